"""Lookbacks against a real server and a real database (SQLite and PostgreSQL): two versions of the
UN consolidated list (the real one in ../shared/data, and a copy with an entity added and an alias
changed) loaded one after the other; the archive's parties screened against what changed, the hits
recorded as lookback cases, once, by the archive stage and by ``tradewatch sanctions lookback``."""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis
from pydantic import SecretStr
from sqlalchemy import select
from typer.testing import CliRunner

from schemas.alert import Alert
from schemas.report import ImportReport
from services.archive.stage import ArchiveStage
from services.casework.lookback import LOOKBACK_RULE
from services.casework.records import record_alerts
from services.cli import app
from services.rules.engine import RuleSet, evaluate
from services.sanctions.index import ScreeningIndex
from services.sanctions.lists import ListFormat, read_list
from services.sanctions.store import SanctionsStore
from services.settings import DEFAULT_CASE_DUE, Settings
from services.store import Store
from services.store import archive as reports
from services.store.migrate import upgrade
from services.store.models import Case, Finding
from tests.helpers import CATALOG_FILE, RATES_FILE, RULES_FILE, make_report, shared_file
from tests.pipeline import new_context

NEW_ENTITY = "PYONGYANG LOOKBACK TRADING CORPORATION"
NEW_ALIAS = "Sinuiju Lookback Machinery Company"
UNCHANGED = "KOREA RYONHA MACHINERY JOINT VENTURE CORPORATION"
NOW = datetime.now(UTC)


def second_version(real: Path, folder: Path) -> Path:
    """The real list with one DPRK entity added and one DPRK entity's first alias changed."""
    text = real.read_text(encoding="utf-8")
    block = next(
        e
        for e in re.findall(r"<ENTITY>.*?</ENTITY>", text, re.S)
        if "<UN_LIST_TYPE>DPRK" in e and re.search(r"<ALIAS_NAME>[^<]+</ALIAS_NAME>", e)
    )
    assert UNCHANGED not in block
    changed = re.sub(
        r"<ALIAS_NAME>[^<]+</ALIAS_NAME>", f"<ALIAS_NAME>{NEW_ALIAS}</ALIAS_NAME>", block, count=1
    )
    added = re.sub(r"<ENTITY_ALIAS>.*?</ENTITY_ALIAS>", "", block, flags=re.S)
    added = re.sub(r"<DATAID>\d+</DATAID>", "<DATAID>99999001</DATAID>", added)
    added = re.sub(r"<FIRST_NAME>[^<]*</FIRST_NAME>", f"<FIRST_NAME>{NEW_ENTITY}</FIRST_NAME>", added)
    added = re.sub(
        r"<REFERENCE_NUMBER>[^<]*</REFERENCE_NUMBER>", "<REFERENCE_NUMBER>KPe.999</REFERENCE_NUMBER>", added
    )
    text = text.replace(block, changed).replace("</ENTITIES>", added + "</ENTITIES>")
    path = folder / "un-sc-v2.xml"
    path.write_text(text, encoding="utf-8")
    return path


def archived_reports() -> list[tuple[ImportReport, datetime]]:
    def report(rid: str, days_ago: int, **fields: object) -> tuple[ImportReport, datetime]:
        at = NOW - timedelta(days=days_ago)
        return make_report(rid, reported_at=at.isoformat(), text="machinery shipment", **fields), at

    return [
        report("new-entity", 40, importer=NEW_ENTITY),
        report("new-alias", 200, exporter=NEW_ALIAS),
        report("caught-live", 20, exporter=NEW_ALIAS),  # the rules stage caught it: a case names the entry
        report("unchanged", 100, importer=UNCHANGED),
        report("clean", 10, importer="Dandong Happy Harvest Trading Co"),
        report("too-old", 900, importer=NEW_ENTITY),
    ]


async def fill(store: Store) -> None:
    async with store.writing() as session:
        await reports.archive(
            session,
            [
                reports.Incoming(r, r.model_dump_json(exclude_none=True), at, at)
                for r, at in archived_reports()
            ],
            NOW,
        )


async def load(redis_client: aredis.Redis, settings: Settings, path: Path) -> None:
    parsed = read_list(path, "un-sc", ListFormat.UN_XML)
    await SanctionsStore(redis_client, settings).save("un-sc", ListFormat.UN_XML, str(path), parsed)


async def lookback_findings(store: Store) -> dict[str, Alert]:
    async with store.reading() as session:
        rows = (await session.execute(select(Case.report_id, Finding.alert).join(Finding))).all()
    alerts = {rid: Alert.model_validate_json(a) for rid, a in rows}
    return {rid: a for rid, a in alerts.items() if a.rule_id == LOOKBACK_RULE}


@pytest.mark.shared
async def test_a_list_change_screens_the_archive_against_what_changed(
    settings: Settings, store: Store, database_url: str, tmp_path: Path, pack: RuleSet
) -> None:
    real = shared_file("data", "un-sc-consolidated-2020-03-20.xml")
    v2 = second_version(real, tmp_path)
    await fill(store)
    # "caught-live" arrived after the second version was in force: the rules stage's party rule
    # made it a case then (the same engine and screening as live, recorded as the records stage does).
    live_index = ScreeningIndex.build(read_list(v2, "un-sc", ListFormat.UN_XML).entries)
    caught = next(r for r, _ in archived_reports() if r.report_id == "caught-live")
    live_alerts = [a for a in evaluate(caught, pack, NOW, live_index) if a.rule_id == "un-listed-party"]
    assert live_alerts
    async with store.writing() as session:
        await record_alerts(session, live_alerts, DEFAULT_CASE_DUE)
    s = settings.model_copy(update={"database_url": SecretStr(database_url)})
    ctx = new_context(s)
    stage = ArchiveStage(ctx, Store(database_url))
    try:
        await load(ctx.redis, s, real)
        # The first list the lookbacks see is new in every entry: the archive is screened against it all.
        first = await stage.look_back_if_changed()
        assert first is not None
        assert [c.previous for c in first.lists] == [None]
        assert {(h.report_id, h.role) for h in first.hits} == {("unchanged", "importer")}
        assert first.cases_opened == 1
        assert await stage.look_back_if_changed() is None  # nothing changed since

        await load(ctx.redis, s, v2)
        second = await stage.look_back_if_changed()
        assert second is not None
        (change,) = second.lists
        assert (change.previous, change.new, change.changed) == (first.lists[0].current, 1, 1)
        assert change.current != change.previous
        assert second.reports == 5  # within the year: not too-old
        hits = {(h.report_id, h.role, h.reference) for h in second.hits}
        assert hits == {
            ("new-entity", "importer", "KPe.999"),
            ("new-alias", "exporter", hits_ref(second, "new-alias")),
        }
        assert second.known == 1  # caught-live's case names the entry already
        assert second.cases_opened == 2
        found = await lookback_findings(store)
        assert set(found) == {"new-entity", "new-alias", "unchanged"}
        alert = found["new-alias"]
        assert "lookback" in alert.tags
        assert alert.severity.value == "critical"
        assert any(change.current in e and "un-sc" in e for e in alert.evidence)
        assert any(e.startswith("lookback: report of") for e in alert.evidence)
        assert NEW_ALIAS in " ".join(alert.evidence)
        assert await stage.look_back_if_changed() is None
    finally:
        await stage.stop()
        await ctx.redis.aclose()
        ctx.endpoint.close()


def hits_ref(result: object, report_id: str) -> str:
    return next(h.reference for h in result.hits if h.report_id == report_id)  # type: ignore[attr-defined]


@pytest.mark.shared
def test_sanctions_lookback_by_hand_against_every_entry_records_each_hit_once(
    settings: Settings,
    database_url: str,
    raw_redis: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = shared_file("data", "un-sc-consolidated-2020-03-20.xml")
    v2 = second_version(real, tmp_path)

    async def setup() -> None:
        store = Store(database_url)
        ctx = new_context(settings)
        try:
            await upgrade(store)
            await fill(store)
            await load(ctx.redis, settings, v2)
        finally:
            await store.dispose()
            await ctx.redis.aclose()
            ctx.endpoint.close()

    asyncio.run(setup())
    for key in list(os.environ):
        if key.startswith("TRADEWATCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    env = {
        "TRADEWATCH_DATABASE_URL": database_url,
        "TRADEWATCH_REDIS_URL": settings.redis_url.get_secret_value() if settings.redis_url else "",
        "TRADEWATCH_NAMESPACE": settings.namespace,
        "TRADEWATCH_CATALOG_FILE": str(CATALOG_FILE),
        "TRADEWATCH_RULES_FILES": str(RULES_FILE),
        "TRADEWATCH_RATES_FILE": str(RATES_FILE),
        "TRADEWATCH_LOG_LEVEL": "warning",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    result = CliRunner().invoke(app, ["sanctions", "lookback", "--all", "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {h["report_id"] for h in doc["hits"]} == {"new-entity", "new-alias", "unchanged", "caught-live"}
    assert doc["cases_opened"] == 4
    since = (NOW - timedelta(days=1000)).date().isoformat()
    again = CliRunner().invoke(app, ["sanctions", "lookback", "--all", "--since", since])
    assert again.exit_code == 0, again.stderr
    assert (
        "cases opened: 1, findings added to cases: 0, recorded before: 4" in again.stdout
    )  # too-old, now in the window
    plain = CliRunner().invoke(app, ["sanctions", "lookback"])
    assert "unchanged since the last lookback" in plain.stdout
