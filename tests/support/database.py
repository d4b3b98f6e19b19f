"""Migrated PostgreSQL databases for tests, cloned from a template in milliseconds.

Running every migration for every test is slow; instead each test process migrates one
template database once and every test gets ``CREATE DATABASE ... TEMPLATE`` of it.
Names are random, so parallel test processes never share a database.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from tests.support.services import PG_ADMIN_URL, _url_for

__all__ = ["clone_database", "create_migrated_template", "drop_template"]


def create_migrated_template() -> str:
    """Create a database with every migration applied; returns its name."""
    from builder.persistence.migrations import upgrade_database

    name = f"tmpl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    asyncio.run(upgrade_database(_url_for(name)))
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        # Nobody may connect to a template while it is being copied.
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    return name


def clone_database(template: str, prefix: str = "test") -> str:
    """A new database copied from ``template``; returns its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return _url_for(name)


def drop_template(name: str) -> None:
    """Drop a template made by :func:`create_migrated_template`."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
