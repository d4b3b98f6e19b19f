"""Token usage keeps the prompt-cache tokens a provider reports.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 04:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for column in ("cache_read_tokens", "cache_write_tokens"):
        op.add_column(
            "token_usage",
            sa.Column(column, sa.Integer(), server_default=sa.text("0"), nullable=False),
        )


def downgrade() -> None:
    for column in ("cache_write_tokens", "cache_read_tokens"):
        op.drop_column("token_usage", column)
