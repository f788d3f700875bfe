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
import os
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
from services.store import Store
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
