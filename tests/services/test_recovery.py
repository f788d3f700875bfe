"""What the runtime does when things go wrong: poison messages, lost groups, crashed consumers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import redis

from services.rules.stage import RulesStage
from services.runtime import Consumes, Context
from services.settings import Settings
from services.wire import Entry
from tests.fixtures.news_facts import NEWS_REPORT
from tests.helpers import until
from tests.pipeline import new_context, run_burst


class Crashing:
    """A stage whose handler always fails (a defect, or a dependency that is down)."""

    name = "crashing"

    def __init__(self, ctx: Context) -> None:
        names = ctx.settings.streams
        self.partitions = [Consumes(names.reports, "crashing", names.key("crashing", "dead"))]
        self.calls = 0

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def busy(self) -> bool:
        return False

    async def handle(self, batch: Sequence[Entry], consumes: Consumes) -> None:
        self.calls += 1
        raise RuntimeError("dependency down")


async def test_poison_message_is_dead_lettered_after_the_delivery_limit(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    s = settings.model_copy(update={"max_deliveries": 3, "reclaim_idle": 0.2})
    raw_redis.xadd(s.streams.reports, {"report": json.dumps(NEWS_REPORT)})
    stages: list[Crashing] = []

    def make(ctx: Context) -> list[Crashing]:
        stages.append(Crashing(ctx))
        return stages

    await run_burst(s, make, timeout=30)

    dead = raw_redis.xrange(s.streams.key("crashing", "dead"))
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields[b"dead.deliveries"] == b"4"
    assert b"limit 3" in fields[b"dead.reason"]
    assert b"last error: RuntimeError: dependency down" in fields[b"dead.reason"]
    assert json.loads(fields[b"report"])["report_id"] == NEWS_REPORT["report_id"]
    assert stages[0].calls == 3
    assert raw_redis.xpending(s.streams.reports, "crashing")["pending"] == 0


async def test_entries_left_by_a_dead_consumer_are_reclaimed(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    names = settings.streams
    raw_redis.xgroup_create(names.reports, "rules", id="0", mkstream=True)
    raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})
    # Another process read it and died before acking.
    raw_redis.xreadgroup("rules", "crashed-worker", {names.reports: ">"}, count=10)

    await run_burst(settings, lambda ctx: [RulesStage(ctx)])

    assert raw_redis.xlen(names.alerts) > 0
    assert raw_redis.xpending(names.reports, "rules")["pending"] == 0


async def test_lost_group_is_recreated_and_reading_goes_on(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    names = settings.streams
    ctx = new_context(settings)
    from services.runtime import build

    app = build(settings, [RulesStage(ctx)], ctx)
    task = asyncio.create_task(app.run())
    try:
        assert await until(lambda: raw_redis.exists(names.reports)), "the worker never made its group"
        # A flush or a restart without persistence: the stream and its group vanish.
        raw_redis.delete(names.reports)
        await asyncio.sleep(0.5)  # the worker reads on meanwhile, into a missing group
        raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})
        assert await until(lambda: raw_redis.exists(names.alerts)), "reading did not go on"
        assert raw_redis.xlen(names.alerts) > 0
    finally:
        app.exit()
        await asyncio.wait_for(task, 30)
