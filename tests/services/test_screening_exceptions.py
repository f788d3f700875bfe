"""A screening exception kept in the store of record, published, and applied by the rules stage
against a real server: the match of that name to that entry is held back and the alert says so
beside what still matched; revoked, the match is back."""

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
from tests.helpers import SAMPLE_XML
from tests.pipeline import run_burst

IMPORTER = "Korea Ryŏnha Machinery J/V Co., Ltd."


def report(report_id: str) -> dict[str, object]:
    return {
        "report_id": report_id,
        "source": "field",
        "destination_country": "KP",
        "crossing": "Dandong-Sinuiju",
        "importer": IMPORTER,
        "text": "The lathes were loaded beside cargo for the Chong Chon Gang Shipping Co. yard.",
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
    assert await screening.publish(store, ctx.redis, settings) == 1

    raw_redis.xadd(settings.streams.reports, {"report": json.dumps(report("excepted"), ensure_ascii=False)})
    await run_burst(settings, lambda c: [RulesStage(c)])

    (party,) = [a for a in alerts_of(raw_redis, settings, "excepted") if a.rule_id == "un-listed-party"]
    # The importer's match is held back and said; the name in the text still matches.
    assert any(line.startswith(f'screening skipped "{IMPORTER}" against KPe.016') for line in party.evidence)
    assert any("exception by rita until" in line for line in party.evidence)
    assert not any(line.startswith("importer ") for line in party.evidence)
    assert any("Chong Chon Gang" in line and "matches" in line for line in party.evidence)

    await screening.revoke(store, "rita", kept.id, "the panel confirmed the listing")
    await screening.publish(store, ctx.redis, settings)
    raw_redis.xadd(settings.streams.reports, {"report": json.dumps(report("revoked"), ensure_ascii=False)})
    await run_burst(settings, lambda c: [RulesStage(c)])
    (again,) = [a for a in alerts_of(raw_redis, settings, "revoked") if a.rule_id == "un-listed-party"]
    assert any(line.startswith(f'importer "{IMPORTER}" matches KPe.016') for line in again.evidence)
    assert not any("screening skipped" in line for line in again.evidence)
