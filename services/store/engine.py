"""The connection to the store of record: one async engine, sessions, one writer at a time.

SQLite (the embedded default, ``DATA_DIR/tradewatch.db``) through aiosqlite; PostgreSQL through
asyncpg. Each SQLite connection turns on foreign keys, WAL (a reader beside the writer) and a busy
timeout, and every transaction begins ``IMMEDIATE``: it holds the file's one write lock from its
first statement, so a transaction that reads the audit chain's head appends to it before anyone
else can. On PostgreSQL a writing transaction locks the chain's head row (``SELECT ... FOR
UPDATE``) before anything else: writers take turns, readers never wait.

A URL may be written as people write it (``postgresql://user:pass@host/db``, ``sqlite:///path``):
the async driver is added here. ``?search_path=NAME`` on a PostgreSQL URL keeps the store in a
schema of its own within a shared database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from services.redact import redact, register_secret
from services.store.models import AuditHead

if TYPE_CHECKING:
    from services.settings import Settings

# aiosqlite logs every statement at debug level from its own thread: noise (and SQL) that would
# cut into the lines of the event loop's thread on a shared stderr. Its warnings still show.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for the SQLite file's write lock before it gives up."""

CONNECT_TIMEOUT_S = 10.0


class StoreUnavailable(RuntimeError):
    """The database does not answer (down, unreachable, locked past the timeout): try again later."""


def unavailable(error: BaseException) -> bool:
    """A failure that says the database cannot be reached now, not that the work is wrong."""
    if isinstance(error, StoreUnavailable | OSError | TimeoutError | PoolTimeout | ConnectionError):
        return True
    if isinstance(error, OperationalError | InterfaceError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    # asyncpg raises its own errors for a connection that died under a query.
    name = type(error).__name__
    return name in {"ConnectionDoesNotExistError", "CannotConnectNowError", "ConnectionFailureError"}


def async_url(url: str) -> URL:
    """``postgresql://`` -> ``postgresql+asyncpg://``, ``sqlite://`` -> ``sqlite+aiosqlite://``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(
        f"{parsed.drivername}: the store of record runs on PostgreSQL (postgresql://...) or SQLite (sqlite:///...)"
    )


def display(url: str | URL) -> str:
    """The URL as it may be shown: no password."""
    return (
        make_url(url).render_as_string(hide_password=True) if isinstance(url, str) else url.render_as_string()
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is turned off: ours begins IMMEDIATE (below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    # WAL is kept in the file: only the first connections to a new file switch it, and a switch
    # refused while another of them holds a lock (SQLite does not wait for it) is left to the
    # next connection; until then this one works in the rollback journal, as correctly.
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except Exception as error:
            if "locked" not in str(error):
                raise
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # One writer at a time: the write lock is taken when the transaction begins, not at its
    # first write, so two transactions never both read the chain's head and then both append.
    mode = "DEFERRED" if conn.get_execution_options().get("tradewatch_read_only") else "IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN {mode}")


class Store:
    """The store of record: an engine, its sessions, and the transactions casework runs in."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        parsed = async_url(url)
        if parsed.password:
            register_secret(str(parsed.password))
        self.url = parsed
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        connect_args: dict[str, Any] = {}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S
        else:
            query = dict(parsed.query)
            settings: dict[str, str] = {}
            if "search_path" in query:
                settings["search_path"] = str(query.pop("search_path"))
            parsed = parsed.set(query=query)
            connect_args["timeout"] = CONNECT_TIMEOUT_S
            connect_args["command_timeout"] = 60
            if settings:
                connect_args["server_settings"] = settings
            kwargs |= {"pool_size": pool_size, "max_overflow": pool_size, "pool_timeout": CONNECT_TIMEOUT_S}
        self.engine: AsyncEngine = create_async_engine(parsed, connect_args=connect_args, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self._writer = self.engine
        self._reader = self.engine.execution_options(tradewatch_read_only=True)
        self.sessions = async_sessionmaker(self._writer, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self._reader, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.store_url())

    def __repr__(self) -> str:
        return f"Store({display(self.url)})"

    @property
    def shown(self) -> str:
        return display(self.url)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A writing transaction with the chain's head locked first (see :mod:`services.store.audit`),
        committed when the block ends, rolled back when it raises."""
        async with self.sessions() as session, session.begin():
            # SQLite: the IMMEDIATE begin already holds the lock; the FOR UPDATE is left out.
            await session.execute(select(AuditHead.id).where(AuditHead.id == 1).with_for_update())
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction: it never waits for a writer."""
        async with self.read_sessions() as session, session.begin():
            yield session

    async def ping(self, within: float = CONNECT_TIMEOUT_S) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers now."""
        try:
            async with asyncio.timeout(within), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as error:
            if unavailable(error):
                raise StoreUnavailable(describe(error)) from error
            raise

    async def dispose(self) -> None:
        await self.engine.dispose()


def describe(error: BaseException) -> str:
    """A database error in one line, without the SQL and parameters SQLAlchemy appends."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        error = error.orig
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return redact(f"{type(error).__name__}: {first}" if first else type(error).__name__)
