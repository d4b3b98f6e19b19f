"""A project records which replica runs its dev server, so others can forward previews.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("sandbox_replica", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("projects", "sandbox_replica")
