"""The report archive: every report published on the report stream, for backtests, lookbacks and
flows; and the sanctions lists as the last lookback saw them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "archived_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("reported_at", WHEN, nullable=True),
        sa.Column("received_at", WHEN, nullable=False),
        sa.Column("event_at", WHEN, nullable=False),
        sa.Column("crossing", sa.Text(), nullable=True),
        sa.Column("chapters", sa.Text(), nullable=False, server_default=""),
        sa.Column("archived_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archived_reports")),
        sa.UniqueConstraint("report_id", name=op.f("uq_archived_reports_report_id")),
    )
    op.create_index(op.f("ix_archived_reports_source"), "archived_reports", ["source"])
    op.create_index(op.f("ix_archived_reports_received_at"), "archived_reports", ["received_at"])
    op.create_index(op.f("ix_archived_reports_event_at"), "archived_reports", ["event_at"])
    op.create_index(op.f("ix_archived_reports_crossing"), "archived_reports", ["crossing"])
    # Lookbacks: each sanctions list as the last lookback saw it.
    op.create_table(
        "lookback_baselines",
        sa.Column("list_name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("fingerprints", sa.Text(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("list_name", name=op.f("pk_lookback_baselines")),
    )


def downgrade() -> None:
    op.drop_table("lookback_baselines")
    op.drop_table("archived_reports")
