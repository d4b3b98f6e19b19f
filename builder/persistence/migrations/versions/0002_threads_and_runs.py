"""Agent threads (context expiry) and runs; one usage row per run step.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 03:35:52.740531
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default="idle", nullable=False),
        sa.Column("ttl_seconds", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_activity_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("swept_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "jsonb_typeof(metadata) = 'object'", name=op.f("ck_threads_metadata_is_object")
        ),
        sa.CheckConstraint(
            "status IN ('idle', 'busy', 'interrupted', 'error')",
            name=op.f("ck_threads_status_is_known"),
        ),
        sa.CheckConstraint(
            "ttl_seconds IS NULL OR ttl_seconds > 0", name=op.f("ck_threads_ttl_positive")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_threads_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_threads_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("thread_id", name=op.f("pk_threads")),
    )
    op.create_index(op.f("ix_threads_expires_at"), "threads", ["expires_at"], unique=False)
    op.create_index(
        op.f("ix_threads_last_activity_at"), "threads", ["last_activity_at"], unique=False
    )
    op.create_index(op.f("ix_threads_project_id"), "threads", ["project_id"], unique=False)
    op.create_index(
        op.f("ix_threads_user_id_updated_at"), "threads", ["user_id", "updated_at"], unique=False
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("assistant_id", sa.Text(), server_default="web_builder", nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("multitask_strategy", sa.Text(), nullable=True),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "kwargs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "jsonb_typeof(metadata) = 'object'", name=op.f("ck_runs_metadata_is_object")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'success', 'error', 'cancelled', 'interrupted', "
            "'timeout')",
            name=op.f("ck_runs_status_is_known"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_runs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.thread_id"],
            name=op.f("fk_runs_thread_id_threads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    op.create_index(
        op.f("ix_runs_thread_id_created_at"), "runs", ["thread_id", "created_at"], unique=False
    )
    op.create_unique_constraint(
        op.f("uq_token_usage_run_id_step"), "token_usage", ["run_id", "step"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_token_usage_run_id_step"), "token_usage", type_="unique")
    op.drop_index(op.f("ix_runs_thread_id_created_at"), table_name="runs")
    op.drop_table("runs")
    op.drop_index(op.f("ix_threads_user_id_updated_at"), table_name="threads")
    op.drop_index(op.f("ix_threads_project_id"), table_name="threads")
    op.drop_index(op.f("ix_threads_last_activity_at"), table_name="threads")
    op.drop_index(op.f("ix_threads_expires_at"), table_name="threads")
    op.drop_table("threads")
