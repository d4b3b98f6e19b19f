"""Shared fixtures: isolated settings, a PostgreSQL database and a Redis prefix per test.

Tests talk to the real PostgreSQL and Redis of the machine (``BUILDER_TEST_PG_ADMIN_URL``,
``BUILDER_TEST_REDIS_URL``); nothing here mocks them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from builder.persistence import Database
from builder.settings import Settings, get_settings
from tests.support.database import clone_database, create_migrated_template, drop_template
from tests.support.services import REDIS_URL, create_database, delete_redis_prefix, drop_database


def let_the_sandbox_user_through(*directories: Path) -> None:
    """As root, confined commands run as the sandbox user, who must pass through the data
    directory's parents: pytest makes its temporary directories 0700 (and its root
    private again at each session's start)."""
    if os.geteuid() == 0:
        for directory in directories:
            directory.chmod(directory.stat().st_mode | 0o001)


@pytest.fixture(scope="session", autouse=True)
def _searchable_temporary_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    let_the_sandbox_user_through(base.parent, base)


@pytest.fixture(autouse=True)
def isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Every test starts with no BUILDER_* variables, no .env, and a private data dir."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    for name in list(os.environ):
        if name.startswith("BUILDER_") and not name.startswith("BUILDER_TEST_"):
            monkeypatch.delenv(name)
    data_dir = tmp_path_factory.mktemp("data")
    let_the_sandbox_user_through(data_dir)
    monkeypatch.setenv("BUILDER_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def migrated_template() -> Iterator[str]:
    """A database with every migration applied, made once per test process."""
    name = create_migrated_template()
    try:
        yield name
    finally:
        drop_template(name)


@pytest.fixture
def migrated_db_url(migrated_template: str) -> Iterator[str]:
    """A fresh database at the newest schema for this test, dropped afterwards."""
    url = clone_database(migrated_template)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
async def db(migrated_db_url: str, settings: Settings) -> AsyncIterator[Database]:
    """A :class:`~builder.persistence.Database` on a fresh migrated database (no cache)."""
    database = Database(migrated_db_url, settings=settings)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix private to this test; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_redis_prefix(prefix)


@pytest.fixture
def redis_url() -> str:
    """The URL of the test Redis database."""
    return REDIS_URL


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Development settings with a private data directory."""
    return Settings(data_dir=tmp_path / "data")
