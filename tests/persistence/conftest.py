"""Fixtures for persistence tests: a user and a project on the per-test database."""

from __future__ import annotations

import pytest

from builder.persistence import Database, create_project, get_or_create_user
from builder.persistence.schemas import ProjectPublic, UserPublic


@pytest.fixture
async def user(db: Database) -> UserPublic:
    """A user named alice."""
    return await get_or_create_user(db, name="alice")


@pytest.fixture
async def project(db: Database, user: UserPublic) -> ProjectPublic:
    """A project of alice's."""
    return await create_project(db, user_id=user.id, name="Bakery", description="A bakery site")
