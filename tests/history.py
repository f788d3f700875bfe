"""Helpers for the history tests: archived reports put in a store, and the command line's
environment for the history commands."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.report import ImportReport
from services.store import Store
from services.store import archive as reports
from services.store.migrate import upgrade
from tests.helpers import CATALOG_FILE, RATES_FILE, RULES_FILE

RECEIVED = datetime(2026, 3, 25, tzinfo=UTC)
"""When the archived reports of these tests arrived."""


async def fill(store: Store, items: list[ImportReport]) -> None:
    async with store.writing() as session:
        await reports.archive(
            session,
            [
                reports.Incoming(r, r.model_dump_json(exclude_none=True), RECEIVED, r.reported_at or RECEIVED)
                for r in items
            ],
            RECEIVED,
        )


def command_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    """The command line's environment: this database, the shipped configuration, nothing of the
    caller's own TRADEWATCH_* settings, a working directory of its own."""
    for key in list(os.environ):
        if key.startswith("TRADEWATCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "TRADEWATCH_DATABASE_URL": database_url,
        "TRADEWATCH_CATALOG_FILE": str(CATALOG_FILE),
        "TRADEWATCH_RULES_FILES": str(RULES_FILE),
        "TRADEWATCH_RATES_FILE": str(RATES_FILE),
        "TRADEWATCH_LOG_LEVEL": "warning",
    }.items():
        monkeypatch.setenv(name, value)


def seed(database_url: str, items: list[ImportReport]) -> None:
    """A migrated store at ``database_url`` holding these reports (for a test without a loop)."""

    async def go() -> None:
        store = Store(database_url)
        try:
            await upgrade(store)
            await fill(store, items)
        finally:
            await store.dispose()

    asyncio.run(go())
