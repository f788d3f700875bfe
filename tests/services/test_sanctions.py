"""Sanctions lists in a real server: loaded, replaced at once, screened; the rules stage end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from schemas.alert import Alert
from services.cli import app
from services.rules.stage import RulesStage
from services.runtime import Context
from services.sanctions.lists import ListedEntry, ListFormat, ParsedList, read_list
from services.sanctions.store import SanctionsStore, ScreeningCache
from services.settings import Settings
from tests.helpers import SAMPLE_CSV, SAMPLE_XML, shared_file, until
from tests.pipeline import run_burst


def cli_env(settings: Settings) -> dict[str, str]:
    assert settings.redis_url is not None
    return {
        "TRADEWATCH_REDIS_URL": settings.redis_url.get_secret_value(),
        "TRADEWATCH_NAMESPACE": settings.namespace,
        "TRADEWATCH_LOG_LEVEL": "warning",
    }


def made_list(tag: str, count: int) -> ParsedList:
    entries = [
        ListedEntry(id=str(n), reference=f"{tag}.{n}", kind="entity", name=f"Entity {tag} {n}", tags=["t"])
        for n in range(count)
    ]
    return ParsedList(date="2026-01-01", sha256=tag * 12, entries=entries)


async def test_a_reload_replaces_the_list_at_once(ctx: Context, raw_redis: redis.Redis) -> None:
    store = SanctionsStore(ctx.redis, ctx.settings)
    first = await store.save("t", ListFormat.UN_XML, "a.xml", made_list("a", 3_000))
    assert first.changed
    assert first.replaced is None
    seen: list[set[str]] = []
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            _, entries = await store.read()
            seen.append({e.reference.split(".")[0] for e in entries} | {f"n={len(entries)}"})
            await asyncio.sleep(0)

    task = asyncio.create_task(reader())
    assert await until(lambda: len(seen) >= 1)  # reading while the list is replaced
    second = await store.save("t", ListFormat.UN_XML, "b.xml", made_list("b", 3_000))
    after = len(seen)
    assert await until(lambda: len(seen) >= after + 2)  # a read begun after the save has ended
    stop.set()
    await task
    assert second.replaced == first.meta.version
    # Every read saw one whole version: all of list a or all of list b, never a mixture or a part.
    assert seen
    assert all(s in ({"a", "n=3000"}, {"b", "n=3000"}) for s in seen), seen[:3]
    assert seen[-1] == {"b", "n=3000"}
    old_key = store.entries_key("t", first.meta.version)
    assert 0 < raw_redis.ttl(old_key) <= int(ctx.settings.sanctions_keep_replaced)  # readable a while
    assert raw_redis.ttl(store.entries_key("t", second.meta.version)) == -1  # in force: kept
    again = await store.save("t", ListFormat.UN_XML, "b.xml", made_list("b", 3_000))
    assert not again.changed


async def test_the_stage_cache_follows_list_versions(ctx: Context) -> None:
    cache = ScreeningCache(ctx.redis, ctx.settings, recheck=0)
    assert len(await cache.current()) == 0
    store = SanctionsStore(ctx.redis, ctx.settings)
    await store.save("un-sc", ListFormat.UN_XML, str(SAMPLE_XML), read_list(SAMPLE_XML, "un-sc"))
    index = await cache.current()
    assert len(index) == 20
    assert await cache.current() is index  # unchanged version: not rebuilt
    await store.save("os", ListFormat.OPENSANCTIONS_CSV, str(SAMPLE_CSV), read_list(SAMPLE_CSV, "os"))
    assert len(await cache.current()) == 23


def test_load_lists_and_screen_from_the_command_line(settings: Settings) -> None:
    runner = CliRunner()
    env = cli_env(settings)
    loaded = runner.invoke(app, ["sanctions", "load", str(SAMPLE_XML)], env=env)
    assert loaded.exit_code == 0, loaded.output
    summary = json.loads(loaded.stdout)
    assert summary["list"] == "un-sc"
    assert summary["entries"] == 20
    assert summary["date"].startswith("2020-03-20")
    assert summary["changed"] is True

    screened = runner.invoke(app, ["sanctions", "screen", "Corea Ryŏnha Machine Tool Co", "--json"], env=env)
    assert screened.exit_code == 0, screened.output
    matches = json.loads(screened.stdout)
    assert matches[0]["reference"] == "KPe.016"
    assert matches[0]["name"] == "KOREA RYONHA MACHINERY JOINT VENTURE CORPORATION"
    assert matches[0]["matched_alias"] == "Ryonha Machine Tool"
    assert matches[0]["score"] == 1.0

    nothing = runner.invoke(app, ["sanctions", "screen", "Liaoning Tractor Works", "--json"], env=env)
    assert json.loads(nothing.stdout) == []
    lists = runner.invoke(app, ["sanctions", "lists"], env=env)
    assert json.loads(lists.stdout.splitlines()[0])["version"] == summary["version"]


def test_a_malformed_file_is_refused_and_the_list_in_force_stays(settings: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    env = cli_env(settings)
    assert runner.invoke(app, ["sanctions", "load", str(SAMPLE_XML)], env=env).exit_code == 0
    broken = tmp_path / "broken.xml"
    broken.write_text(SAMPLE_XML.read_text(encoding="utf-8")[:3_000], encoding="utf-8")
    refused = runner.invoke(app, ["sanctions", "load", str(broken)], env=env)
    assert refused.exit_code == 1
    assert "refused" in refused.stderr
    assert "not well-formed XML at line" in refused.stderr
    lists = runner.invoke(app, ["sanctions", "lists"], env=env)
    assert json.loads(lists.stdout)["entries"] == 20


def test_a_list_older_than_the_max_age_is_warned_about_at_load_and_in_status(settings: Settings) -> None:
    runner = CliRunner()
    env = cli_env(settings)
    # The fixture UN list was generated on 2020-03-20: years over the default 90 days.
    loaded = runner.invoke(app, ["sanctions", "load", str(SAMPLE_XML)], env=env)
    assert loaded.exit_code == 0, loaded.output
    summary = json.loads(loaded.stdout)
    assert summary["too_old"] is True
    assert summary["age_days"] > 2_000
    assert "sanctions list un-sc is" in loaded.stderr
    assert "(generated 2020-03-20), older than TRADEWATCH_SANCTIONS_MAX_AGE (90 days)" in loaded.stderr
    # OpenSanctions' export has no date of generation: its age counts from the load.
    fresh = runner.invoke(app, ["sanctions", "load", str(SAMPLE_CSV)], env=env)
    assert fresh.exit_code == 0, fresh.output
    assert json.loads(fresh.stdout)["too_old"] is False
    assert "warning" not in fresh.stderr

    shown = runner.invoke(app, ["status", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    lists = {listed["list"]: listed for listed in json.loads(shown.stdout)["sanctions"]}
    assert lists["un-sc"]["too_old"] is True
    assert lists["un-sc"]["since"] == "generated 2020-03-20"
    assert "TRADEWATCH_SANCTIONS_MAX_AGE" in lists["un-sc"]["warning"]
    assert lists["opensanctions"]["too_old"] is False
    assert lists["opensanctions"]["since"].startswith("loaded ")
    assert lists["opensanctions"]["age_days"] == 0

    patient = {**env, "TRADEWATCH_SANCTIONS_MAX_AGE": "36500d"}
    again = runner.invoke(app, ["sanctions", "load", str(SAMPLE_XML)], env=patient)
    assert json.loads(again.stdout)["too_old"] is False
    assert "warning" not in again.stderr
    shown = runner.invoke(app, ["status", "--json"], env=patient)
    assert not any(listed["too_old"] for listed in json.loads(shown.stdout)["sanctions"])


def test_screen_without_lists_says_what_to_do(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["sanctions", "screen", "Anything"], env=cli_env(settings))
    assert result.exit_code == 1
    assert "tradewatch sanctions load FILE" in result.stderr


@pytest.mark.parametrize("real_list", [False, True], ids=["fixture-list", "real-un-list"])
async def test_a_report_from_a_listed_importer_alerts_with_entry_reference_alias_and_score(
    settings: Settings, ctx: Context, raw_redis: redis.Redis, real_list: bool
) -> None:
    path = shared_file("data", "un-sc-consolidated-2020-03-20.xml") if real_list else SAMPLE_XML
    await SanctionsStore(ctx.redis, settings).save(
        "un-sc", ListFormat.UN_XML, str(path), read_list(path, "un-sc")
    )
    report = {
        "report_id": "party-1",
        "source": "field",
        "destination_country": "KP",
        "crossing": "Dandong-Sinuiju",
        "importer": "Korea Ryŏnha Machinery J/V Co., Ltd.",
        "exporter": "Dandong Xinyuan Trading Co., Ltd.",
        "items": [{"description": "second-hand lathes", "hs_code": "8458.11", "condition": "used"}],
    }
    raw_redis.xadd(settings.streams.reports, {"report": json.dumps(report, ensure_ascii=False)})

    await run_burst(settings, lambda c: [RulesStage(c)])

    alerts = [Alert.model_validate_json(f[b"alert"]) for _, f in raw_redis.xrange(settings.streams.alerts)]
    party = next(a for a in alerts if a.rule_id == "un-listed-party")
    assert party.severity == "critical"
    assert "1718" in party.legal_basis
    assert "8(d)" in party.legal_basis
    assert len(party.evidence) == 1
    evidence = party.evidence[0]
    assert evidence.startswith('importer "Korea Ryŏnha Machinery J/V Co., Ltd." matches KPe.016 ')
    assert "KOREA RYONHA MACHINERY JOINT VENTURE CORPORATION" in evidence
    assert 'alias "KOREA RYONHA MACHINERY JOINT VENTURE CORPORATION", score 1.00' in evidence
    assert {a.rule_id for a in alerts} >= {"unscr2397-machinery", "un-listed-party"}


DATA = Path(__file__).resolve().parents[1] / "data" / "sanctions"


@pytest.mark.parametrize(
    ("file", "list_name", "entries"),
    [
        ("ofac-sdn-sample.xml", "ofac-sdn", 4),
        ("eu-fsf-sample.xml", "eu-fsf", 3),
        ("uk-sanctions-list-sample.xml", "uk-sanctions", 3),
        ("opensanctions-entities.ftm.json", "opensanctions", 3),
    ],
)
def test_each_format_loads_from_its_content_and_a_wrong_file_leaves_it_in_force(
    settings: Settings, tmp_path: Path, file: str, list_name: str, entries: int
) -> None:
    runner = CliRunner()
    env = cli_env(settings)
    loaded = runner.invoke(app, ["sanctions", "load", str(DATA / file)], env=env)
    assert loaded.exit_code == 0, loaded.output
    summary = json.loads(loaded.stdout)
    assert (summary["list"], summary["entries"]) == (list_name, entries)
    # The same name given to a file of another format, forced as this one: refused, list kept.
    other = DATA / ("eu-fsf-sample.xml" if file != "eu-fsf-sample.xml" else "ofac-sdn-sample.xml")
    fmt = {
        "ofac-sdn": "ofac-sdn-xml",
        "eu-fsf": "eu-xml",
        "uk-sanctions": "uk-xml",
        "opensanctions": "ftm-json",
    }
    refused = runner.invoke(
        app, ["sanctions", "load", str(other), "--format", fmt[list_name], "--list", list_name], env=env
    )
    assert refused.exit_code == 1
    assert f"refused {other}" in refused.stderr
    lists = [
        json.loads(line) for line in runner.invoke(app, ["sanctions", "lists"], env=env).stdout.splitlines()
    ]
    assert [(m["list"], m["entries"], m["version"]) for m in lists] == [
        (list_name, entries, summary["version"])
    ]
    if list_name == "ofac-sdn":
        screened = runner.invoke(app, ["sanctions", "screen", "IMO 8660313", "--json"], env=env)
        assert json.loads(screened.stdout)[0]["name"] == "CHON MA SAN"
        hangul = runner.invoke(app, ["sanctions", "screen", "조선련하기계합영회사", "--json"], env=env)
        assert json.loads(hangul.stdout)[0]["reference"] == "OFAC-90001"


async def test_reviewed_exceptions_are_read_from_the_redis_hash(ctx: Context, raw_redis: redis.Redis) -> None:
    from datetime import UTC, datetime, timedelta

    from schemas.sanctions import ScreeningException

    store = SanctionsStore(ctx.redis, ctx.settings)
    await store.save("un-sc", ListFormat.UN_XML, str(SAMPLE_XML), read_list(SAMPLE_XML, "un-sc"))
    cache = ScreeningCache(ctx.redis, ctx.settings, recheck=0)
    assert len((await cache.current()).exceptions) == 0
    expires = datetime.now(UTC) + timedelta(days=10)
    # As the store of record writes it: one JSON object per field of <ns>:sanctions:exceptions.
    raw_redis.hset(
        f"{ctx.settings.namespace}:sanctions:exceptions",
        "exc-1",
        json.dumps(
            {
                "name": "Daedong Credit Bank",
                "entry": "KPe.023",
                "by": "k.lee",
                "reason": "a bank in Seoul",
                "expires": expires.isoformat(),
            }
        ),
    )
    raw_redis.hset(f"{ctx.settings.namespace}:sanctions:exceptions", "broken", "{}")
    index = await cache.current()
    assert len(index.exceptions) == 1
    found = index.exceptions.by_key
    assert next(iter(found.values())).by == "k.lee"
    await store.put_exception(
        "exc-2", ScreeningException(name="KOMID", entry="KPe.001", by="k.lee", reason="checked")
    )
    assert len((await cache.current()).exceptions) == 2


async def test_a_report_naming_a_listed_vessel_by_imo_alerts(
    settings: Settings, ctx: Context, raw_redis: redis.Redis
) -> None:
    path = DATA / "ofac-sdn-sample.xml"
    await SanctionsStore(ctx.redis, settings).save(
        "ofac-sdn", ListFormat.OFAC_SDN_XML, str(path), read_list(path, "ofac-sdn")
    )
    report = {
        "report_id": "vessel-1",
        "source": "field",
        "destination_country": "KP",
        "text": "Fuel oil was moved at sea to a tanker, IMO No. 8660313, renamed ORIENTAL STAR last year.",
        "vessels": [{"name": "ORIENTAL STAR", "imo": "IMO 8660313"}],
    }
    raw_redis.xadd(settings.streams.reports, {"report": json.dumps(report)})
    await run_burst(settings, lambda c: [RulesStage(c)])
    alerts = [Alert.model_validate_json(f[b"alert"]) for _, f in raw_redis.xrange(settings.streams.alerts)]
    vessel = next(a for a in alerts if a.rule_id == "listed-vessel")
    assert vessel.severity == "critical"
    assert "2371" in vessel.legal_basis
    assert vessel.evidence == [
        'vessel "ORIENTAL STAR" matches OFAC-90003 CHON MA SAN (DPRK4): the same IMO number (IMO 8660313), score 1.00'
    ]
