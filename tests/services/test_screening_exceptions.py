"""A screening exception kept in the store of record, published, and applied by the rules stage
against a real server: the listed-party alert no longer fires for that name and entry, the
report's other alerts say what was skipped, and a revocation brings the match back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import redis

from schemas.alert import Alert
from services.casework import screening, users
from services.rules.stage import RulesStage
from services.runtime import Context
from services.sanctions.lists import ListFormat, read_list
from services.sanctions.store import SanctionsStore
from services.settings import Settings
from services.store import Store
from tests.pipeline import run_burst
from tests.unit.test_sanctions_match import SAMPLE_XML

IMPORTER = "Korea Ryŏnha Machinery J/V Co., Ltd."


def report(report_id: str) -> dict[str, object]:
    return {
        "report_id": report_id,
        "source": "field",
        "destination_country": "KP",
        "crossing": "Dandong-Sinuiju",
        "importer": IMPORTER,
        "items": [{"description": "second-hand lathes", "hs_code": "8458.11", "condition": "used"}],
    }


def alerts_of(raw_redis: redis.Redis, settings: Settings, report_id: str) -> list[Alert]:
    found = [Alert.model_validate_json(f[b"alert"]) for _, f in raw_redis.xrange(settings.streams.alerts)]
    return [a for a in found if a.report_id == report_id]


async def test_the_rules_stage_skips_what_an_exception_covers_and_says_so(
    settings: Settings, ctx: Context, raw_redis: redis.Redis, store: Store
) -> None:
    await SanctionsStore(ctx.redis, settings).save(
        "un-sc", ListFormat.UN_XML, str(SAMPLE_XML), read_list(SAMPLE_XML, "un-sc")
    )
    await users.bootstrap_admin(store)
    await users.add_user(store, "admin", "rita", "reviewer", None)
    kept = await screening.add(
        store, "rita", "KOREA RYONHA MACHINERY JV CO LTD", "KPe.016", "a machine-tool dealer in Dalian",
        datetime.now(UTC) + timedelta(days=30),
    )  # fmt: skip
    assert await screening.publish(store, ctx.redis, settings.streams) == 1

    raw_redis.xadd(settings.streams.reports, {"report": json.dumps(report("excepted"), ensure_ascii=False)})
    await run_burst(settings, lambda c: [RulesStage(c)])

    alerts = alerts_of(raw_redis, settings, "excepted")
    assert "un-listed-party" not in {a.rule_id for a in alerts}
    assert alerts  # the goods still alert
    said = f'screening skipped importer "{IMPORTER}" as KPe.016: exception {kept.id} by rita until '
    assert all(any(line.startswith(said) for line in a.evidence) for a in alerts)

    await screening.revoke(store, "rita", kept.id, "the panel confirmed the listing")
    await screening.publish(store, ctx.redis, settings.streams)
    raw_redis.xadd(settings.streams.reports, {"report": json.dumps(report("revoked"), ensure_ascii=False)})
    await run_burst(settings, lambda c: [RulesStage(c)])
    again = alerts_of(raw_redis, settings, "revoked")
    assert "un-listed-party" in {a.rule_id for a in again}
    assert not any("screening skipped" in line for a in again for line in a.evidence)
