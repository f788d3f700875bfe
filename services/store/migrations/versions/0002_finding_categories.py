"""Findings carry their alert's categories (its matched items'), so cases are filtered and counted by category in SQL.

Stored as ``|tractors|excavators|`` (every category between bars), so ``LIKE '%|tractors|%'``
matches one category exactly on every engine; findings recorded before are filled from their alert.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("categories", sa.Text(), nullable=False, server_default=""))
    findings = sa.table(
        "findings", sa.column("id", sa.Integer), sa.column("alert", sa.Text), sa.column("categories", sa.Text)
    )
    bind = op.get_bind()
    for row in bind.execute(sa.select(findings.c.id, findings.c.alert)).all():
        items = json.loads(row.alert).get("matched_items") or []
        categories = [c for item in items for c in item.get("categories") or []]
        if categories:
            joined = "|" + "|".join(sorted(set(categories))) + "|"
            bind.execute(findings.update().where(findings.c.id == row.id).values(categories=joined))


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_column("categories")
