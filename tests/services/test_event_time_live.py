"""Event time in the live rules stage against a real server: the same out-of-order sequence fed to
``rules test`` (MemoryState) and to the rules stage (the Redis scripts) makes the same decisions;
a backfill alert is recorded as a case and never notified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from schemas.alert import Alert
from schemas.report import ImportReport
from services.notify.stage import NotifyStage
from services.records.stage import RecordsStage
from services.rules import trial
from services.rules.engine import RuleSet
from services.rules.stage import RulesStage
from services.settings import Settings
from services.store import Store
from services.store.models import Finding
from services.wire import alert_fields, report_fields
from tests.helpers import make_report
from tests.pipeline import Receiver, numbered_alert, run_burst, with_channels

RECEIVED = datetime(2026, 3, 20, tzinfo=UTC)


def lathe(
    report_id: str, day: str | None, crossing: str = "Dandong-Sinuiju", hs: str = "8458"
) -> ImportReport:
    fields: dict[str, object] = {"crossing": crossing, "items": [{"description": "machine", "hs_code": hs}]}
    if day is not None:
        fields["reported_at"] = f"{day}T00:00:00Z"
    return make_report(report_id, **fields)


# Arrival order; each arrives a minute after the one before (its stream entry id says when).
SEQUENCE = [
    lathe("m3", "2026-03-12"),
    lathe("m1", "2026-03-08"),
    lathe("h1", "2026-03-09", "Hunchun-Rason", "8429"),
    lathe("m2", "2026-03-10"),  # late: completes m1..m3
    lathe("j1", "2026-01-05"),  # backfills, past the 30-day horizon
    lathe("j2", "2026-01-06", hs="8460"),
    lathe("m4", "2026-03-11"),
    lathe("j3", "2026-01-07"),  # fires a backfill surge
    lathe("u1", None),  # undated: counts at its receipt
    lathe("h2", "2026-03-19", "Hunchun-Rason", "8429"),
    lathe("m5", "2026-03-13"),
    lathe("m6", "2026-03-18"),
]


def received(n: int) -> datetime:
    return RECEIVED + timedelta(minutes=n)


def stream_alerts(raw_redis: redis.Redis, settings: Settings) -> list[Alert]:
    return [Alert.model_validate_json(f[b"alert"]) for _, f in raw_redis.xrange(settings.streams.alerts)]


def decisions(alerts: list[Alert]) -> list[tuple[str, str, bool, list[str]]]:
    """What the state decided: which report fired which rule, backfill or not, and the state's reason."""
    temporal = {"machinery-surge-by-crossing", "new-machinery-heading"}
    return sorted(
        (
            a.report_id,
            a.rule_id,
            a.backfill,
            [e for e in a.evidence if "matching reports" in e or "first time" in e],
        )
        for a in alerts
        if a.rule_id in temporal
    )


async def test_rules_test_and_the_live_stage_decide_an_out_of_order_sequence_alike(
    settings: Settings, raw_redis: redis.Redis, pack: RuleSet
) -> None:
    for n, report in enumerate(SEQUENCE):
        # The entry id is the receipt time, as the server would have set it then.
        ms = int(received(n).timestamp() * 1000)
        raw_redis.xadd(settings.streams.reports, report_fields(report), id=f"{ms}-0")  # type: ignore[arg-type]
    await run_burst(settings, lambda ctx: [RulesStage(ctx, pack)])
    live = decisions(stream_alerts(raw_redis, settings))

    trials = trial.run(
        SEQUENCE, pack, received(len(SEQUENCE)), received=[received(n) for n in range(len(SEQUENCE))]
    )
    memory = decisions([a for t in trials for a in t.fired])
    assert live == memory
    surges = [(rid, backfill) for rid, rule, backfill, _ in live if rule == "machinery-surge-by-crossing"]
    assert surges == [("j3", True), ("m2", False)]
    (reason,) = next(r for rid, rule, _, r in live if rid == "m2" and rule == "machinery-surge-by-crossing")
    assert reason.endswith("m1 (2026-03-08), m2 (2026-03-10), m3 (2026-03-12)")


async def test_a_backfill_alert_becomes_a_case_and_is_never_sent(
    settings: Settings,
    raw_redis: redis.Redis,
    store: Store,
    database_url: str,
    httpserver: HTTPServer,
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver(httpserver)
    s = with_channels(settings, tmp_path, [(receiver.url, "hook")], database_url=SecretStr(database_url))
    fresh, backfill = numbered_alert(1), numbered_alert(2, backfill=True)
    for alert in (fresh, backfill):
        raw_redis.xadd(s.streams.alerts, alert_fields(alert))  # type: ignore[arg-type]
    await run_burst(s, lambda ctx: [NotifyStage(ctx), RecordsStage(ctx)])
    assert receiver.alert_ids() == [fresh.alert_id]
    async with store.reading() as session:
        recorded = set((await session.scalars(select(Finding.alert_id))).all())
    assert recorded == {fresh.alert_id, backfill.alert_id}
