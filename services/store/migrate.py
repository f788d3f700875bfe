"""The store's schema, brought up to date by Alembic migrations shipped in the package.

``upgrade`` runs every migration not yet applied, in one transaction: on PostgreSQL under an
advisory lock, on SQLite under the file's write lock, so two processes starting at once (two
records workers on a fresh database) migrate it once. ``pending`` says which migrations a
database still lacks, for a stage that must not write to an older schema.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from services.store.engine import Store

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x7472_6477_6462  # "trdwdb": one advisory lock for the store's migrations


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest migration shipped with this version of tradewatch."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current(store: Store) -> str | None:
    """The migration the database is at (None: an empty database)."""
    async with store.engine.connect() as conn:
        return await conn.run_sync(_current)


async def pending(store: Store) -> list[str]:
    """Migrations the database lacks, oldest first (empty: up to date)."""
    at = await current(store)
    script = ScriptDirectory.from_config(_config())
    missing = [r.revision for r in script.iterate_revisions(head(), at)]
    return list(reversed(missing))


async def upgrade(store: Store) -> tuple[str | None, str]:
    """Apply every migration not yet applied; ``(revision before, revision after)``."""

    def run(connection: Connection) -> tuple[str | None, str]:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        before = _current(connection)
        command.upgrade(_config(connection), "head")
        return before, head()

    async with store.engine.begin() as conn:
        return await conn.run_sync(run)
