"""The store of record in tests: the same test against SQLite and against PostgreSQL.

``database_url`` is parametrised over both. SQLite: a file in the test's own directory.
PostgreSQL: ``TRADEWATCH_TEST_DATABASE_URL``, else the server on 127.0.0.1:5432 (user postgres,
database ``test``) if one answers; each test gets a schema of its own there
(``?search_path=tw_<random>``), dropped after it, so runs never see each other's data. Where no
PostgreSQL answers, its half of each test is skipped with the reason.

Registered for every test by ``pytest_plugins`` in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from schemas.alert import Alert
from schemas.report import ImportReport
from services.store import Store, engine
from services.store.migrate import upgrade
from tests.helpers import ROOT

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def _dsn(url: str) -> str:
    """A URL as asyncpg takes it (no ``+asyncpg``, no query)."""
    parsed = make_url(url).set(drivername="postgresql").set(query={})
    return parsed.render_as_string(hide_password=False)


def pg_run(url: str, *statements: str) -> None:
    """Run statements on the server, on a connection of their own (in a thread: a test's event
    loop may be running)."""

    async def go() -> None:
        conn = await asyncpg.connect(_dsn(url), timeout=5)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()


@cache
def postgres() -> tuple[str | None, str]:
    """The PostgreSQL to test against, or why there is none."""
    url = os.environ.get("TRADEWATCH_TEST_DATABASE_URL", PG_DEFAULT)
    try:
        pg_run(url, "SELECT 1")
    except Exception as error:
        return None, (
            f"no PostgreSQL answers at {make_url(url).render_as_string(hide_password=True)} "
            f"({type(error).__name__}: {error}); set TRADEWATCH_TEST_DATABASE_URL to test against one"
        )
    return url, ""


def with_search_path(url: str, schema: str) -> str:
    parsed = make_url(url)
    return parsed.update_query_dict({"search_path": schema}).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'tradewatch.db'}"
        return
    url, reason = postgres()
    if url is None:
        pytest.skip(reason)
    schema = f"tw_{uuid.uuid4().hex[:12]}"
    pg_run(url, f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(url, schema)
    finally:
        pg_run(url, f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated, empty store."""
    s = Store(database_url)
    await upgrade(s)
    yield s
    await s.dispose()


@cache
def sample_alerts() -> dict[str, list[Alert]]:
    """The sample reports' alerts as the rules stage makes them, by report id."""
    from datetime import UTC, datetime

    from services.rules.engine import evaluate
    from services.rules.loader import load_ruleset

    ruleset = load_ruleset(
        [ROOT / "config/rules.yaml"], ROOT / "config/catalog.yaml", ROOT / "config/rates.yaml"
    )
    now = datetime(2026, 3, 6, 10, tzinfo=UTC)
    found: dict[str, list[Alert]] = {}
    for line in (ROOT / "config/samples/reports.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            report = ImportReport.model_validate_json(line)
            if alerts := evaluate(report, ruleset, now):
                found[report.report_id] = alerts
    return found


# --- a store that does not answer


class _Proxy:
    """A TCP proxy in front of PostgreSQL: stopped, the database is down for whoever goes through it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self.pipes):
                writer.close()
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.pipes |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def database_down(database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Yields ``(url the stage uses, bring_back)``: PostgreSQL behind a stopped proxy; SQLite with
    its write lock held by another connection (and a short busy timeout)."""
    if database_url.startswith("sqlite"):
        monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_S", 0.3)
        holder = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")

        async def release() -> None:
            holder.execute("COMMIT")

        try:
            yield database_url, release
        finally:
            holder.close()
        return
    url = make_url(database_url)
    proxy = _Proxy((url.host or "127.0.0.1", url.port or 5432))
    await proxy.start()
    port = proxy.port
    await proxy.stop()  # down: nothing listens on the port the stage was given

    async def back() -> None:
        await proxy.start(port)

    try:
        yield url.set(port=port).render_as_string(hide_password=False), back
    finally:
        await proxy.stop()
