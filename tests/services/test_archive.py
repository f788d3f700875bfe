"""The archive stage against a real server and a real database (SQLite and PostgreSQL): every report
archived once, acked after the commit, malformed ones acked (the rules stage dead-letters them), queries by time, source,
crossing and HS chapter in SQL, the purge past retention, and a database that is down."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
import redis
from pydantic import SecretStr

from schemas.report import ImportReport
from services import metrics, runtime
from services.archive.stage import ArchiveStage
from services.runtime import Context
from services.settings import Settings
from services.store import Store
from services.store import archive as reports
from services.store.models import ArchivedReport
from services.wire import report_fields
from tests.dbfixtures import database_down
from tests.helpers import make_report
from tests.pipeline import new_context, run_burst, run_cli


def with_store(settings: Settings, url: str, **update: object) -> Settings:
    return settings.model_copy(update={"database_url": SecretStr(url), **update})


def publish(raw_redis: redis.Redis, settings: Settings, items: list[ImportReport]) -> None:
    for report in items:
        raw_redis.xadd(settings.streams.reports, report_fields(report))  # type: ignore[arg-type]


def sample() -> list[ImportReport]:
    return [
        make_report(
            "jan-lathe", source="customs", crossing="Dandong-Sinuiju", reported_at="2026-01-15T00:00:00Z",
            items=[{"description": "lathe", "hs_code": "8458.11"}, {"description": "truck", "hs_code": "8704"}],
        ),
        make_report(
            "feb-xray", source="news", crossing="Hunchun-Rason", reported_at="2026-02-03T12:00:00Z",
            items=[{"description": "x-ray machine", "hs_code": "9022"}],
        ),
        make_report("no-date", source="news", text="excavators seen at the border"),
    ]  # fmt: skip


async def archived(store: Store, where: reports.Filter | None = None) -> list[str]:
    async with store.reading() as session:
        return [r.report_id for r in await reports.query(session, where)]


def pending(raw_redis: redis.Redis, settings: Settings) -> int:
    return int(raw_redis.xpending(settings.streams.reports, "archive")["pending"])


async def test_reports_are_archived_once_with_their_times_and_queried_in_sql(
    settings: Settings, raw_redis: redis.Redis, store: Store, database_url: str
) -> None:
    s = with_store(settings, database_url)
    before = datetime.now(UTC) - timedelta(seconds=1)
    publish(raw_redis, s, sample())
    publish(raw_redis, s, sample()[:1])  # the same report again: archived once
    raw_redis.xadd(s.streams.reports, {"report": b"{broken"})

    await run_burst(s, lambda ctx: [ArchiveStage(ctx)])

    assert pending(raw_redis, s) == 0
    # The malformed entry is acked, not dead-lettered here: the rules stage dead-letters it, once.
    assert raw_redis.xrange(s.streams.reports_dead) == []
    assert metrics.SKIPPED.labels("archive")._value.get() >= 1
    # Event-time order: the dated reports at their own dates, the undated one at its receipt.
    assert await archived(store) == ["jan-lathe", "feb-xray", "no-date"]
    async with store.reading() as session:
        rows = {r.report_id: r for r in await reports.query(session)}
    lathe = rows["jan-lathe"]
    assert lathe.event_at == lathe.reported_at == datetime(2026, 1, 15, tzinfo=UTC)
    assert lathe.chapters == "|84|87|"
    assert ImportReport.model_validate_json(lathe.report) == sample()[0]
    assert before <= lathe.received_at <= datetime.now(UTC)
    undated = rows["no-date"]
    assert undated.reported_at is None
    assert undated.event_at == undated.received_at
    assert undated.chapters == ""

    assert await archived(store, reports.Filter(chapter="84")) == ["jan-lathe"]
    assert await archived(store, reports.Filter(chapter="90")) == ["feb-xray"]
    assert await archived(store, reports.Filter(source="news")) == ["feb-xray", "no-date"]
    assert await archived(store, reports.Filter(crossing="hunchun-rason")) == ["feb-xray"]
    assert await archived(
        store, reports.Filter(since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 2, 1, tzinfo=UTC))
    ) == ["jan-lathe"]
    async with store.reading() as session:
        assert await reports.count(session, reports.Filter(source="news")) == 2
        assert await reports.count(session) == 3
        assert [r.report_id async for r in reports.stream(session, page=1)] == [
            "jan-lathe",
            "feb-xray",
            "no-date",
        ]

    # Delivered again (a crash after the commit, before the ack): nothing doubles.
    async with store.writing() as session:
        again = [
            reports.Incoming(r, r.model_dump_json(), datetime.now(UTC), datetime.now(UTC)) for r in sample()
        ]
        assert await reports.archive(session, again, datetime.now(UTC)) == (0, 3)


async def test_the_purge_removes_reports_received_before_the_retention(
    settings: Settings, raw_redis: redis.Redis, store: Store, database_url: str
) -> None:
    s = with_store(settings, database_url, archive_retention=86_400.0)
    now = datetime.now(UTC)
    async with store.writing() as session:
        items = [
            reports.Incoming(r, r.model_dump_json(), now - timedelta(days=age), now - timedelta(days=age))
            for r, age in zip(sample(), (400, 2, 0), strict=True)
        ]
        await reports.archive(session, items, now)
    ctx: Context = new_context(s)
    stage = ArchiveStage(ctx, Store(database_url))
    try:
        assert await stage.purge_once() == 2
    finally:
        await stage.stop()
    assert await archived(store) == ["no-date"]
    async with store.reading() as session:
        assert (await session.get(ArchivedReport, 3)) is not None


async def test_a_database_down_holds_the_archive_acks_until_it_is_back(
    settings: Settings,
    raw_redis: redis.Redis,
    store: Store,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish(raw_redis, settings, sample())
    async with database_down(database_url, monkeypatch) as (url, bring_back):
        s = with_store(settings, url)
        ctx: Context = new_context(s)
        app = runtime.build(s, [ArchiveStage(ctx)], ctx, burst=True)
        running = asyncio.create_task(app.run())
        await asyncio.sleep(4 * s.reclaim_idle)
        assert pending(raw_redis, s) == len(sample())
        deliveries = raw_redis.xpending_range(s.streams.reports, "archive", "-", "+", 100)
        assert {d["times_delivered"] for d in deliveries} == {1}
        assert raw_redis.xlen(s.streams.reports_dead) == 0
        assert not running.done()
        await bring_back()
        await asyncio.wait_for(running, 60)
    assert sorted(await archived(store)) == ["feb-xray", "jan-lathe", "no-date"]
    assert pending(raw_redis, s) == 0


async def test_tradewatch_worker_archive_and_archive_list(
    settings: Settings, raw_redis: redis.Redis, store: Store, database_url: str
) -> None:

    publish(raw_redis, settings, sample())
    code, _, err = await run_cli(
        settings, "worker", "archive", "--burst", TRADEWATCH_DATABASE_URL=database_url
    )
    assert code == 0, err[-3000:]
    assert sorted(await archived(store)) == ["feb-xray", "jan-lathe", "no-date"]
    code, out, err = await run_cli(
        settings, "archive", "list", "--chapter", "84", "--json", TRADEWATCH_DATABASE_URL=database_url
    )
    assert code == 0, err[-3000:]
    listed = json.loads(out)
    assert listed["total"] == 1
    assert [(r["report_id"], r["chapters"]) for r in listed["reports"]] == [("jan-lathe", ["84", "87"])]
