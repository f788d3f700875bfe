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
