"""What every benchmark shares: a throwaway database and its section of docs/benchmarks.md."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg

__all__ = ["ADMIN_URL", "DOC", "create_database", "drop_database", "write_section"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
ADMIN_URL = os.environ.get(
    "BUILDER_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def create_database() -> tuple[str, str]:
    """Create an empty database with a random name; returns its name and plain URL."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def drop_database(name: str) -> None:
    """Drop a database made by :func:`create_database`, closing its connections."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_section(name: str, body: str) -> None:
    """Replace (or append) the ``bench:<name>`` section of docs/benchmarks.md."""
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    section = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)
