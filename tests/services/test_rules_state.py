"""Rules over time against a real server: the Lua scripts keep the same contract as MemoryState,
a restart neither forgets nor floods, and a redelivered report never counts twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from schemas.alert import Alert
from schemas.report import ImportReport
from services.rules import state
from services.rules.engine import RuleSet, explain
from services.rules.stage import RulesStage
from services.rules.temporal import Decision, MemoryState, Pending
from services.runtime import Context
from services.settings import Settings
from tests.helpers import NOW
from tests.pipeline import run_burst

SURGE = "machinery-surge-by-crossing"


def machinery(
    report_id: str, crossing: str = "Dandong-Sinuiju", description: str = "lathe"
) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "source": "test",
        "destination_country": "KP",
        "crossing": crossing,
        "items": [{"description": description}],
    }


def pendings(pack: RuleSet, report: dict[str, Any], at: datetime = NOW) -> dict[str, Pending]:
    """What the shipped rules over time (the rule set the stage loads here) leave to decide."""
    verdicts = explain(ImportReport.model_validate(report), pack, at)
    return {v.rule_id: v.pending for v in verdicts if v.pending is not None}


async def test_redis_scripts_keep_the_memory_contract(ctx: Context, pack: RuleSet) -> None:
    # One sequence through both keepers: redeliveries, two crossings, a reset, an expiry, new terms.
    steps = [
        ("a", "Dandong-Sinuiju", "lathe", 0),
        ("a", "Dandong-Sinuiju", "lathe", 0),
        ("x", "Changbai-Hyesan", "bulldozer", 1),
        ("b", "Dandong-Sinuiju", "bulldozer", 2),
        ("c", "Dandong-Sinuiju", "lathe", 3),
        ("c", "Dandong-Sinuiju", "lathe", 3),
        ("d", "Dandong-Sinuiju", "excavator", 4),
        ("e", "Dandong-Sinuiju", "lathe", 24 * 8),
        ("f", "Dandong-Sinuiju", "grinder", 24 * 8 + 1),
        ("g", "Dandong-Sinuiju", "lathe", 24 * 8 + 2),
    ]
    memory = MemoryState()
    from_memory: list[Decision] = []
    from_redis: list[Decision] = []
    for rid, crossing, description, hours in steps:
        at = NOW + timedelta(hours=hours)
        found = pendings(pack, machinery(rid, crossing, description), at)
        batch = [found[SURGE], found["new-machinery-heading"]]
        from_memory += [memory.decide(p, at) for p in batch]
        from_redis += await state.decide(ctx.redis, ctx.settings.streams, batch, at)
    assert from_redis == from_memory
    surges = [d for d in from_redis[::2] if d.fire]
    assert [d.reports for d in surges] == [("a", "b", "c"), ("a", "b", "c"), ("e", "f", "g")]
    assert [d.new_terms for d in from_redis[1::2] if d.fire] == [("8458",), ("8458",), ("8429",), ("8460",)]


async def test_one_batch_of_decisions_on_the_same_keys_keeps_the_memory_contract(
    ctx: Context, pack: RuleSet
) -> None:
    # The stage sends every decision of a rule and group in one script call: in one batch, a
    # surge fires, restarts and fires again, a repeated report gets its decision back, and a
    # heading is new only for the report that brought it.
    steps = [("a", "lathe"), ("b", "lathe"), ("a", "lathe"), ("c", "bulldozer"), ("d", "lathe"),
             ("e", "grinder"), ("f", "lathe"), ("c", "bulldozer"), ("g", "lathe")]  # fmt: skip
    batch: list[Pending] = []
    for rid, description in steps:
        found = pendings(pack, machinery(rid, "Dandong-Sinuiju", description))
        batch += [found[SURGE], found["new-machinery-heading"]]
    found = pendings(pack, machinery("h", "Changbai-Hyesan"))
    batch.insert(5, found[SURGE])  # another group in between
    memory = MemoryState()
    from_memory = [memory.decide(p, NOW) for p in batch]
    from_redis = await state.decide(ctx.redis, ctx.settings.streams, batch, NOW)
    assert from_redis == from_memory
    fired = [d.reports for d in from_redis if d.fire and d.reports]
    assert fired == [("a", "b", "c"), ("d", "e", "f"), ("a", "b", "c")]  # c's repeat: its decision again
    assert [d.new_terms for d in from_redis if d.new_terms] == [
        ("8458",),
        ("8458",),
        ("8429",),
        ("8460",),
        ("8429",),
    ]


def _alerts(raw_redis: redis.Redis, settings: Settings) -> list[Alert]:
    entries = raw_redis.xrange(settings.streams.alerts)
    return [Alert.model_validate_json(fields[b"alert"]) for _, fields in entries]


def _publish(raw_redis: redis.Redis, settings: Settings, *reports: dict[str, Any]) -> None:
    for report in reports:
        raw_redis.xadd(settings.streams.reports, {"report": json.dumps(report)})


async def test_a_restart_neither_forgets_nor_floods(settings: Settings, raw_redis: redis.Redis) -> None:
    _publish(raw_redis, settings, machinery("d1"), machinery("d2"), machinery("h1", "Changbai-Hyesan"))
    await run_burst(settings, lambda ctx: [RulesStage(ctx)])
    assert SURGE not in {a.rule_id for a in _alerts(raw_redis, settings)}

    # A new process: the two Dandong reports are remembered, so the third makes the surge.
    _publish(raw_redis, settings, machinery("d3"))
    await run_burst(settings, lambda ctx: [RulesStage(ctx)])
    surges = [a for a in _alerts(raw_redis, settings) if a.rule_id == SURGE]
    assert [a.report_id for a in surges] == ["d3"]
    # Undated reports count at their receipt: today.
    today = datetime.now(UTC).date().isoformat()
    assert (
        f"3 matching reports with crossing=dandong sinuiju within 1w (threshold 3): "
        f"d1 ({today}), d2 ({today}), d3 ({today})" in surges[0].evidence
    )
    assert surges[0].matched_items[0].description == "lathe"

    # Yet another start with nothing new: nothing is replayed, nothing fires again.
    await run_burst(settings, lambda ctx: [RulesStage(ctx)])
    assert len([a for a in _alerts(raw_redis, settings) if a.rule_id == SURGE]) == 1
    # New headings fired once each, across the restarts.
    heads = [a.report_id for a in _alerts(raw_redis, settings) if a.rule_id == "new-machinery-heading"]
    assert heads == ["d1"]


async def test_a_redelivered_report_does_not_count_twice(
    settings: Settings, ctx: Context, raw_redis: redis.Redis, pack: RuleSet
) -> None:
    # A worker applied the state for r1 and r2, then died before publishing and acking.
    for rid in ("r1", "r2"):
        now = datetime.now(UTC)  # the stage counts on its own clock
        await state.decide(ctx.redis, settings.streams, [pendings(pack, machinery(rid), now)[SURGE]], now)
    # Their redelivery (and a second publication of r2) must not make a surge of three.
    _publish(raw_redis, settings, machinery("r1"), machinery("r2"), machinery("r2"))
    await run_burst(settings, lambda ctx: [RulesStage(ctx)])
    assert SURGE not in {a.rule_id for a in _alerts(raw_redis, settings)}

    _publish(raw_redis, settings, machinery("r3"))
    await run_burst(settings, lambda ctx: [RulesStage(ctx)])
    surges = [a for a in _alerts(raw_redis, settings) if a.rule_id == SURGE]
    assert [a.report_id for a in surges] == ["r3"]
    groups = {g["name"].decode(): g for g in raw_redis.xinfo_groups(settings.streams.reports)}
    assert groups["rules"]["pending"] == 0


async def test_state_keys_live_under_the_namespace_with_a_bounded_life(
    settings: Settings, ctx: Context, raw_redis: redis.Redis, pack: RuleSet
) -> None:
    await state.decide(ctx.redis, settings.streams, [pendings(pack, machinery("k1"))[SURGE]], NOW)
    keys = sorted(k.decode() for k in raw_redis.scan_iter(match=f"{settings.namespace}:rules:freq:*"))
    assert len(keys) == 3
    assert all(k.startswith(f"{settings.namespace}:rules:freq:{{{SURGE}:") for k in keys)
    # Kept for the window and the backfill horizon past the latest report (1w + 30d by default).
    keep_ms = 7 * 86_400_000 + int(settings.backfill_horizon * 1000)
    assert all(0 < raw_redis.pttl(k) <= keep_ms for k in keys)


async def test_random_out_of_order_sequences_get_the_same_decisions_from_redis_and_memory(
    ctx: Context,
) -> None:
    # Reports of random event times arriving in random order (some delivered twice, some far in
    # the past), windows, thresholds and horizons: the Lua scripts decide as MemoryState does.
    import random

    from services.rules.temporal import MemoryState, Pending

    rng = random.Random(20261202)
    base = datetime(2026, 3, 1, tzinfo=UTC)
    for run in range(40):
        window = rng.choice([1, 2, 7]) * 86_400.0
        count = rng.choice([2, 3, 4])
        horizon = rng.choice([3, 10, 30]) * 86_400.0
        memory = MemoryState(horizon)
        arrived = base
        from_memory: list[Decision] = []
        from_redis: list[Decision] = []
        ids: list[str] = []
        batch: list[tuple[Pending, datetime, datetime]] = []
        for _ in range(rng.randint(5, 25)):
            rid = rng.choice(ids) if ids and rng.random() < 0.15 else f"r{len(ids)}"
            ids.append(rid)
            event = base - timedelta(hours=rng.randint(0, 24 * 60))
            arrived += timedelta(hours=rng.randint(0, 48))
            kind = "frequency" if rng.random() < 0.7 else "new_term"
            pending = Pending(
                kind, f"rule-{run}-{kind}", rid, lambda _: None,  # type: ignore[arg-type,return-value]
                group="g" if kind == "frequency" else "hs_heading",
                terms=() if kind == "frequency" else (rng.choice(["8458", "8429", "8701"]),),
                count=count, window=window,
            )  # fmt: skip
            from_memory.append(memory.decide(pending, event, arrived))
            batch.append((pending, event, arrived))
            if rng.random() < 0.4:  # the stage decides a batch in one call per key set
                from_redis += await state.decide(
                    ctx.redis, ctx.settings.streams, [p for p, _, _ in batch], [e for _, e, _ in batch],
                    horizon, [a for _, _, a in batch],
                )  # fmt: skip
                batch = []
        if batch:
            from_redis += await state.decide(
                ctx.redis, ctx.settings.streams, [p for p, _, _ in batch], [e for _, e, _ in batch],
                horizon, [a for _, _, a in batch],
            )  # fmt: skip
        assert from_redis == from_memory, f"run {run}"
