"""The records stage against a real server and a real database (SQLite and PostgreSQL): alerts
into cases, acked after the commit, idempotent on redelivery, waiting out a database that is down
while the rest of the pipeline goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from sqlalchemy import func, select

from schemas.alert import Alert
from services import runtime
from services.notify.stage import NotifyStage
from services.records.stage import RecordsStage
from services.runtime import Consumes, Context
from services.settings import Settings
from services.store import Store, audit
from services.store.models import Case, Finding
from services.wire import Entry, alert_fields
from tests.dbfixtures import database_down, sample_alerts
from tests.pipeline import Receiver, new_context, run_burst, write_channels, write_subscriptions


def with_store(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"database_url": SecretStr(url)})


def publish(raw_redis: redis.Redis, settings: Settings, alerts: Sequence[Alert]) -> None:
    for alert in alerts:
        raw_redis.xadd(settings.streams.alerts, alert_fields(alert))  # type: ignore[arg-type]


def all_alerts() -> list[Alert]:
    return [a for group in sample_alerts().values() for a in group]


async def counts(store: Store) -> tuple[int, int, int]:
    """Cases, findings, and distinct alert ids among the findings."""
    async with store.reading() as session:
        cases = await session.scalar(select(func.count()).select_from(Case))
        findings = await session.scalar(select(func.count()).select_from(Finding))
        distinct = await session.scalar(select(func.count(func.distinct(Finding.alert_id))))
    return int(cases or 0), int(findings or 0), int(distinct or 0)


async def opened(store: Store) -> int:
    async with store.reading() as session:
        return len([e async for e in audit.entries(session) if e.action == "case.opened"])


def pending(raw_redis: redis.Redis, settings: Settings) -> int:
    return int(raw_redis.xpending(settings.streams.alerts, "records")["pending"])


async def test_alerts_become_one_case_per_report_and_are_acked(
    settings: Settings,
    raw_redis: redis.Redis,
    store: Store,
    database_url: str,
) -> None:
    s = with_store(settings, database_url)
    publish(raw_redis, s, all_alerts())
    raw_redis.xadd(s.streams.alerts, {"alert": b"{broken"})

    await run_burst(s, lambda ctx: [RecordsStage(ctx)])

    assert await counts(store) == (len(sample_alerts()), len(all_alerts()), len(all_alerts()))
    assert pending(raw_redis, s) == 0
    dead = raw_redis.xrange(s.streams.alerts_dead)
    assert [(f[b"dead.stage"], b"not JSON" in f[b"dead.reason"]) for _, f in dead] == [(b"records", True)]
    async with store.reading() as session:
        assert (await audit.verify(session)).ok


async def test_the_same_alert_published_twice_is_recorded_once(
    settings: Settings,
    raw_redis: redis.Redis,
    store: Store,
    database_url: str,
) -> None:
    s = with_store(settings, database_url)
    publish(raw_redis, s, all_alerts())
    await run_burst(s, lambda ctx: [RecordsStage(ctx)])
    publish(raw_redis, s, all_alerts())  # a replay: the rules stage gives the same alert ids
    await run_burst(s, lambda ctx: [RecordsStage(ctx)])
    assert await counts(store) == (len(sample_alerts()), len(all_alerts()), len(all_alerts()))
    assert await opened(store) == len(sample_alerts())


async def test_a_consumer_killed_after_its_commit_and_before_its_ack_doubles_nothing(
    settings: Settings,
    raw_redis: redis.Redis,
    store: Store,
    database_url: str,
) -> None:
    s = with_store(settings, database_url)
    names = s.streams
    raw_redis.xgroup_create(names.alerts, "records", id="0", mkstream=True)
    publish(raw_redis, s, all_alerts())
    # Another worker read every entry, stored half of them, and died before acking any.
    read = raw_redis.xreadgroup("records", "killed-worker", {names.alerts: ">"}, count=1000)
    assert len(read[0][1]) == len(all_alerts())
    from services.casework.records import record_alerts
    from services.settings import DEFAULT_CASE_DUE

    async with store.writing() as session:
        await record_alerts(session, all_alerts()[: len(all_alerts()) // 2], DEFAULT_CASE_DUE)

    await run_burst(s, lambda ctx: [RecordsStage(ctx)])  # reclaimed after reclaim_idle

    assert await counts(store) == (len(sample_alerts()), len(all_alerts()), len(all_alerts()))
    assert await opened(store) == len(sample_alerts())
    assert pending(raw_redis, s) == 0
    assert raw_redis.xlen(names.alerts_dead) == 0


async def test_a_database_down_stops_only_the_records_acks_until_it_is_back(
    settings: Settings,
    raw_redis: redis.Redis,
    store: Store,
    database_url: str,
    httpserver: HTTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = Receiver(httpserver)
    base = settings.model_copy(
        update={
            "channels_file": write_channels(tmp_path / "channels.yaml", [(receiver.url, "hook")]),
            "subscriptions_file": write_subscriptions(tmp_path / "subscriptions.yaml"),
        }
    )
    publish(raw_redis, base, all_alerts())
    async with database_down(database_url, monkeypatch) as (url, bring_back):
        s = with_store(base, url)
        ctx: Context = new_context(s)
        app = runtime.build(s, [RecordsStage(ctx), NotifyStage(ctx)], ctx, burst=True)
        running = asyncio.create_task(app.run())
        # The notifier goes on: every alert is sent and acked in its own group.
        for _ in range(200):
            if len(set(receiver.alert_ids())) == len(all_alerts()):
                break
            await asyncio.sleep(0.1)
        assert set(receiver.alert_ids()) == {a.alert_id for a in all_alerts()}
        await asyncio.sleep(4 * s.reclaim_idle)
        # The records group holds its entries: pending, delivered once, nothing stored or dead.
        assert raw_redis.xpending(s.streams.alerts, "notify")["pending"] == 0
        assert pending(raw_redis, s) == len(all_alerts())
        deliveries = raw_redis.xpending_range(s.streams.alerts, "records", "-", "+", 1000)
        assert {d["times_delivered"] for d in deliveries} == {1}
        assert await counts(store) == (0, 0, 0)
        assert raw_redis.xlen(s.streams.alerts_dead) == 0
        assert not running.done()

        await bring_back()
        await asyncio.wait_for(running, 60)

    assert await counts(store) == (len(sample_alerts()), len(all_alerts()), len(all_alerts()))
    assert pending(raw_redis, s) == 0
    assert raw_redis.xlen(s.streams.alerts_dead) == 0


class _Gated:
    """A stage that cannot store anything now: its reclaimer must leave pending entries alone."""

    name = "gated"

    def __init__(self, ctx: Context) -> None:
        names = ctx.settings.streams
        self.partitions = [Consumes(names.alerts, "gated", names.key("gated", "dead"))]
        self.handled: list[str] = []

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def busy(self) -> bool:
        return False

    async def can_handle(self) -> bool:
        return False

    async def handle(self, batch: Sequence[Entry], consumes: Consumes) -> None:
        self.handled += [e.id for e in batch]


async def test_a_stage_that_cannot_store_reclaims_nothing(settings: Settings, raw_redis: redis.Redis) -> None:
    names = settings.streams
    raw_redis.xgroup_create(names.alerts, "gated", id="0", mkstream=True)
    raw_redis.xadd(names.alerts, {"alert": json.dumps({"left": "pending"})})
    raw_redis.xreadgroup("gated", "crashed-worker", {names.alerts: ">"}, count=10)
    ctx = new_context(settings)
    stage = _Gated(ctx)
    app = runtime.build(settings, [stage], ctx)
    running = asyncio.create_task(app.run())
    await asyncio.sleep(6 * settings.reclaim_idle)
    app.exit()
    await asyncio.wait_for(running, 30)
    (entry,) = raw_redis.xpending_range(names.alerts, "gated", "-", "+", 10)
    assert (entry["consumer"], entry["times_delivered"]) == (b"crashed-worker", 1)
    assert stage.handled == []
