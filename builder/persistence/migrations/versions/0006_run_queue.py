"""The run queue: who started a run, what a worker needs to run it, and its lease.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 08:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("user_id", sa.Uuid(), nullable=True))
    op.add_column(
        "runs", sa.Column("input", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column("runs", sa.Column("worker_id", sa.Text(), nullable=True))
    op.add_column("runs", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("runs", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column(
        "runs",
        sa.Column(
            "cancel_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.create_index(
        "ix_runs_queue",
        "runs",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_runs_queue",
        table_name="runs",
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    for column in ("cancel_requested", "attempts", "lease_expires_at", "worker_id", "input"):
        op.drop_column("runs", column)
    op.drop_column("runs", "user_id")
