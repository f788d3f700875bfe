"""The rules stage against a real server: raw XADD in, plain JSON alerts out, bad input dead-lettered."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from schemas.alert import Alert
from services import metrics
from services.ops.status import snapshot
from services.rules import engine
from services.rules.stage import RulesStage
from services.runtime import Context
from services.settings import Settings
from tests.fixtures.news_facts import EXPECTED_RULES, NEWS_REPORT
from tests.fixtures.readme_example import readme_http_example
from tests.pipeline import run_burst


async def test_raw_xadd_report_becomes_alerts_in_plain_json(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    names = settings.streams
    raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})

    await run_burst(settings, lambda ctx: [RulesStage(ctx)])

    entries = raw_redis.xrange(names.alerts)
    alerts = [Alert.model_validate_json(fields[b"alert"]) for _, fields in entries]
    assert {a.rule_id for a in alerts} >= EXPECTED_RULES
    assert {a.report_id for a in alerts} == {NEWS_REPORT["report_id"]}
    shipyard = next(a for a in alerts if a.rule_id == "shipyard-equipment")
    assert shipyard.severity == "critical"
    assert shipyard.matched_items[0].description == "second-hand CNC cutting machines for a shipyard"
    groups = {g["name"].decode(): g for g in raw_redis.xinfo_groups(names.reports)}
    assert groups["rules"]["pending"] == 0


async def test_bad_entries_are_dead_lettered_and_the_rest_proceeds(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    names = settings.streams
    raw_redis.xadd(names.reports, {"report": b"{not json"})
    raw_redis.xadd(names.reports, {"data": b"{}"})
    raw_redis.xadd(names.reports, {"report": json.dumps({"report_id": "x", "source": "s"})})
    raw_redis.xadd(names.reports, {"report": b"\xff\xfe"})
    raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})

    await run_burst(settings, lambda ctx: [RulesStage(ctx)])

    dead = raw_redis.xrange(names.reports_dead)
    reasons = [fields[b"dead.reason"].decode() for _, fields in dead]
    assert len(reasons) == 4
    assert "not JSON" in reasons[0]
    assert "no field 'report'" in reasons[1]
    assert "at least one of items or text" in reasons[2]
    assert "not UTF-8" in reasons[3]
    assert all(fields[b"dead.stage"] == b"rules" for _, fields in dead)
    assert raw_redis.xlen(names.alerts) >= len(EXPECTED_RULES)
    groups = {g["name"].decode(): g for g in raw_redis.xinfo_groups(names.reports)}
    assert groups["rules"]["pending"] == 0


async def test_entries_written_before_the_group_exists_are_read(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    # The group is created at id 0: a report published before any worker ever ran is not lost.
    names = settings.streams
    raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})
    assert not raw_redis.exists(names.alerts)
    await run_burst(settings, lambda ctx: [RulesStage(ctx)])
    assert raw_redis.xlen(names.alerts) > 0


async def test_a_defect_building_a_fired_alert_dead_letters_only_its_report(
    settings: Settings, raw_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The alert of a rule over time is built only once its state fires it, after the batch's
    # state call: a defect there still dead-letters that one report, and the others of the
    # batch get their own decisions and alerts.
    build = engine._alert

    def failing(*args: Any, **kwargs: Any) -> Alert:
        alert = build(*args, **kwargs)
        if alert.report_id == "broken" and alert.rule_id == "new-machinery-heading":
            raise RuntimeError("cannot build this alert")
        return alert

    monkeypatch.setattr(engine, "_alert", failing)
    names = settings.streams
    raw_redis.xadd(names.reports, {"report": json.dumps({**NEWS_REPORT, "report_id": "broken"})})
    raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})

    await run_burst(settings, lambda ctx: [RulesStage(ctx)])

    dead = raw_redis.xrange(names.reports_dead)
    assert [json.loads(f[b"report"])["report_id"] for _, f in dead] == ["broken"]
    assert dead[0][1][b"dead.reason"] == b"rule evaluation failed: RuntimeError: cannot build this alert"
    alerts = [Alert.model_validate_json(f[b"alert"]) for _, f in raw_redis.xrange(names.alerts)]
    assert {a.report_id for a in alerts} == {NEWS_REPORT["report_id"]}
    assert {a.rule_id for a in alerts} >= EXPECTED_RULES
    groups = {g["name"].decode(): g for g in raw_redis.xinfo_groups(names.reports)}
    assert groups["rules"]["pending"] == 0


async def test_a_report_with_only_text_fires_on_its_goods_and_unrecognised_items_are_counted(
    settings: Settings, raw_redis: redis.Redis, ctx: Context
) -> None:
    # The README's HTTP example, as any producer would XADD it: text, no items.
    names = settings.streams
    raw_redis.xadd(names.reports, {"report": json.dumps(readme_http_example())})
    odd = {
        "report_id": "odd-1",
        "source": "partner",
        "destination_country": "KP",
        "items": [{"description": "lathes"}, {"description": "assorted widgets, model ZX-9"}],
    }
    raw_redis.xadd(names.reports, {"report": json.dumps(odd)})
    counted = metrics.REGISTRY.get_sample_value("tradewatch_unrecognised_items_total") or 0.0

    await run_burst(settings, lambda c: [RulesStage(c)])

    alerts = [Alert.model_validate_json(f[b"alert"]) for _, f in raw_redis.xrange(names.alerts)]
    machinery = next(a for a in alerts if a.report_id == "p-1" and a.rule_id == "unscr2397-machinery")
    assert machinery.severity == "critical"  # second-hand machinery
    [lathes] = machinery.matched_items
    assert (lathes.description, lathes.hs_code) == ("lathes (used)", "8458")
    assert (lathes.quote, lathes.marks) == ("used lathes", [(0, 4), (5, 11)])
    odd_alerts = [a for a in alerts if a.report_id == "odd-1"]
    assert odd_alerts
    assert all(a.unrecognised == ["assorted widgets, model ZX-9"] for a in odd_alerts)
    assert raw_redis.get(names.key("rules", "unrecognised-items")) == b"1"
    assert metrics.REGISTRY.get_sample_value("tradewatch_unrecognised_items_total") == counted + 1
    assert (await snapshot(ctx.redis, settings, with_workers=False)).unrecognised_items == 1
