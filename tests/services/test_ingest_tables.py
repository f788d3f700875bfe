"""Tables through mappings against a real server: Comtrade, China customs, a mapping of our own,
bad rows rejected with file, line, raw data and reason, files refused whole, the inbox's choice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from services.ingest.files import ingest_file
from services.ingest.publisher import Publisher
from services.ingest.registry import Sources, load_sources_file
from services.ingest.sources import UnreadableFile
from services.ingest.stage import IngestStage
from services.runtime import Context
from services.settings import Settings
from services.yamlfile import ConfigError
from tests.fixtures.comtrade import COMTRADE_HEADER, comtrade_row
from tests.helpers import ROOT
from tests.pipeline import published_reports, rejected, run_burst


async def test_comtrade_records_become_reports_once(
    ctx: Context, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    names = ctx.settings.streams
    file = tmp_path / "comtrade.csv"
    file.write_text(
        "\n".join([
            COMTRADE_HEADER,
            comtrade_row("X", "847710", "Injection moulding machines, for rubber or plastics", "12", "240000"),
            comtrade_row("M", "261000", "Chromium ores", "0", "5000"),
            comtrade_row("Q", "870110", "Tractors", "3", "9000"),  # no such flow
            comtrade_row("X", "845811", "Lathes, numerically controlled", "lots", "1"),  # not a number
        ]) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    sources = Sources.from_settings(ctx.settings)
    publisher = Publisher(ctx.redis, names, 60)

    first = await ingest_file(file, sources.get("comtrade"), publisher)
    again = await ingest_file(file, sources.get("comtrade"), publisher)

    assert first.as_dict() == {"read": 4, "published": 2, "duplicates": 0, "rejected": 2}
    assert again.as_dict() == {"read": 4, "published": 0, "duplicates": 2, "rejected": 2}
    export, imported = published_reports(raw_redis, names)
    assert export["report_id"] == "comtrade-156:408:0:X:202601:847710:C00:0"
    assert (export["origin_country"], export["destination_country"]) == ("CN", "KP")
    assert export["reported_at"].startswith("2026-01-01")  # type: ignore[union-attr]
    item = export["items"][0]  # type: ignore[index]
    assert item["hs_code"] == "847710"
    assert (item["quantity"], item["unit"], item["unit_price"], item["currency"]) == (
        12,
        "unit",
        20_000,
        "USD",
    )
    assert "net weight (kg): 12000" in export["text"]  # type: ignore[operator]
    assert (imported["origin_country"], imported["destination_country"]) == ("KP", "CN")
    assert imported["items"][0]["quantity"] == 1  # type: ignore[index]  # a value without a quantity

    bad = rejected(raw_redis, names)[:2]
    assert [b["where"] for b in bad] == ["comtrade.csv:4", "comtrade.csv:5"]
    assert all(b["source"] == "comtrade" for b in bad)
    assert "'Q' is neither an export" in bad[0]["reason"]
    assert "item.quantity: 'lots' is not a number" in bad[1]["reason"]
    assert bad[0]["raw"].startswith("20260101,2026,1,202601,156,CHN,China,Q,")


async def test_china_customs_table_with_chinese_headers(
    ctx: Context, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    names = ctx.settings.streams
    file = tmp_path / "customs.csv"
    file.write_text(
        "数据年月,商品编码,商品名称,贸易伙伴名称,贸易方式名称,注册地名称,第一数量,第一计量单位,净重,美元\n"
        "202602,84295211,挖掘机,朝鲜,边境小额贸易,辽宁省,6,台,84000,720000\n"
        '202602,85153120,"电焊机, 二手",朝鲜,一般贸易,吉林省,40,台,2000,36000\n'
        "202602,87011000,手扶拖拉机,Atlantis,边境小额贸易,吉林省,5,台,900,4000\n",
        encoding="utf-8",
    )
    sources = Sources.from_settings(ctx.settings)
    tally = await ingest_file(file, sources.get("china-customs"), Publisher(ctx.redis, names, 60))

    assert tally.as_dict() == {"read": 3, "published": 2, "duplicates": 0, "rejected": 1}
    excavators, welders = published_reports(raw_redis, names)
    assert excavators["report_id"].startswith("china-customs-")  # type: ignore[union-attr]  # a hash
    assert (excavators["origin_country"], excavators["destination_country"]) == ("CN", "KP")
    assert excavators["items"] == [  # type: ignore[comparison-overlap]
        {"description": "挖掘机", "hs_code": "84295211", "quantity": 6.0, "unit": "unit",
         "unit_price": 120_000.0, "currency": "USD", "condition": "unknown"}
    ]  # fmt: skip
    assert excavators["text"] == (
        "trade mode: border petty trade (边境小额贸易); province: 辽宁省; net weight (kg): 84000"
    )
    assert welders["items"][0]["description"] == "电焊机, 二手"  # type: ignore[index]
    assert "'Atlantis' is not a known country" in rejected(raw_redis, names)[0]["reason"]


async def test_own_mapping_converts_other_currencies_through_the_rates(
    ctx: Context, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    names = ctx.settings.streams
    file = tmp_path / "ledger.csv"
    file.write_text(
        "shipment_no,shipped_on,destination,border_crossing,consignee,shipper,goods,hs_code,quantity,unit,"
        "unit_price,currency,condition,in_parts\n"
        "S-1,2026-03-02,KP,Dandong-Sinuiju,Sinuiju Trading,Liaoning Co,CNC lathes,845811,4,unit,65000,RMB,二手,yes\n"
        "S-2,2026-03-03,KP,Dandong-Sinuiju,Sinuiju Trading,Liaoning Co,presses,8462,1,unit,100,XXX,,no\n",
        encoding="utf-8",
    )
    sources = Sources.from_settings(ctx.settings)
    tally = await ingest_file(file, sources.get("partner-ledger"), Publisher(ctx.redis, names, 60))

    assert tally.as_dict() == {"read": 2, "published": 1, "duplicates": 0, "rejected": 1}
    (report,) = published_reports(raw_redis, names)
    assert report["report_id"] == "partner-ledger-S-1"
    item = report["items"][0]  # type: ignore[index]
    assert item["currency"] == "USD"
    assert item["unit_price"] == pytest.approx(65_000 * 0.138)
    assert item["description"] == "CNC lathes (65,000 CNY a unit as stated)"
    assert (item["condition"], item["disassembled"]) == ("used", True)
    assert "currency 'XXX' is not in the rates table" in rejected(raw_redis, names)[0]["reason"]


def test_files_refused_whole_say_why(ctx: Context, tmp_path: Path) -> None:
    sources = Sources.from_settings(ctx.settings)

    def refusal(name: str, data: bytes, source: str = "comtrade", limit: int | None = None) -> str:
        path = tmp_path / name
        path.write_bytes(data)
        reader = sources.get(source)
        if limit is not None:
            setattr(reader, "max_bytes" if source == "article" else "max_file_bytes", limit)
        with pytest.raises(UnreadableFile) as caught:
            list(reader.read(path))
        return str(caught.value)

    assert "missing columns cmdCode" in refusal("a.csv", b"reporterISO,partnerISO,flowCode\nCHN,PRK,X\n")
    assert "binary content" in refusal("b.csv", b"PK\x03\x04\x00\x00 a zip file")
    assert "UTF-16" in refusal("c.csv", "cmdCode\n8477\n".encode("utf-16"))
    gbk = "商品编码,商品名称,贸易伙伴名称,美元\n84295211,挖掘机,朝鲜,1\n84295211,挖掘机,朝鲜,2\n".encode(
        "gbk"
    )
    message = refusal("d.csv", gbk, "china-customs")
    assert "not utf-8-sig text" in message
    assert "set the encoding" in message
    assert "over the limit of 100" in refusal("e.csv", b"x" * 500, limit=100)
    assert "no header row" in refusal("f.csv", b"\n\n")
    assert "over the limit of 100 for an article" in refusal("g.txt", b"tractors " * 20, "article", 100)
    assert "not UTF-8" in refusal("h.txt", "拖拉机出口朝鲜".encode("gbk"), "article")


def test_sources_file_errors_have_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\n"
        "tables:\n"
        "  comtrade:\n"  # 3: a built-in name
        "    item: {hs_code: cmdCode}\n"
        "  mine:\n"
        "    format: xlsx\n"  # 6: not a format
        "    item: {hs_code: hs, colour: red}\n"  # 7: unknown key
        "inbox:\n"
        "  - {pattern: '*.csv', source: nowhere}\n"  # 9: unknown source
        "feeds:\n"
        "  - {name: f, url: 'ftp://x', interval: soon}\n",  # 11: bad url, bad duration
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_sources_file(path)
    lines = str(caught.value).splitlines()
    assert any(line.startswith(f"{path}:6: tables.mine.format") for line in lines), lines
    assert any(line.startswith(f"{path}:7: tables.mine.item.colour: unknown key") for line in lines), lines
    assert any(line.startswith(f"{path}:11: feeds[0].url") for line in lines), lines
    assert any(line.startswith(f"{path}:11: feeds[0].interval") for line in lines), lines
    # the structural errors first; the cross-checks once the file parses
    path.write_text(
        "tables:\n  comtrade:\n    item: {hs_code: cmdCode}\ninbox:\n  - {pattern: '*.csv', source: nowhere}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_sources_file(path)
    assert str(caught.value).splitlines() == [
        f"{path}:2: 'comtrade' is a built-in source",
        f"{path}:5: inbox.0.source: unknown source 'nowhere' (known: article, china-customs, comtrade, jsonl)",
    ]


def test_the_shipped_sources_file_loads() -> None:
    parsed = load_sources_file(ROOT / "config/sources.yaml", must_exist=True)
    assert "partner-ledger" in parsed.tables
    assert parsed.feeds == []  # nothing polls the network unless someone asks for it


async def test_inbox_picks_the_source_by_folder_rule_or_extension(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    inbox = settings.inbox
    (inbox / "comtrade").mkdir(parents=True)
    row = comtrade_row("X", "847710", "Injection moulding machines", "2", "100")
    (inbox / "comtrade" / "january.csv").write_text(f"{COMTRADE_HEADER}\n{row}\n", encoding="utf-8")
    other = comtrade_row("X", "845811", "Lathes", "2", "100")
    (inbox / "comtrade-2026-02.csv").write_text(f"{COMTRADE_HEADER}\n{other}\n", encoding="utf-8")  # rule
    (inbox / "mystery.csv").write_text("a,b\n1,2\n", encoding="utf-8")  # a .csv needs a folder or a rule
    (inbox / "note.txt").write_bytes((ROOT / "config/samples/article-hunchun-shipyard.txt").read_bytes())

    await run_burst(settings, lambda ctx: [IngestStage(ctx)])

    sources = sorted(str(r["source"]) for r in published_reports(raw_redis, settings.streams))
    assert sources == ["article", "comtrade", "comtrade"]
    done = sorted(p.name.split("-", 1)[1] for p in (inbox / "done").iterdir())
    assert done == ["comtrade-2026-02.csv", "january.csv", "note.txt"]
    reason = next((inbox / "failed").glob("*mystery.csv.reason")).read_text()
    assert "no source for this file" in reason


def test_cli_ingests_a_table_and_prints_the_summary(settings: Settings, tmp_path: Path) -> None:
    file = tmp_path / "comtrade.csv"
    rows = [
        comtrade_row("X", "8701", "Tractors", str(n + 1), "1000", period=f"2025{n % 12 + 1:02d}")
        for n in range(5)
    ]
    file.write_text("\n".join([COMTRADE_HEADER, *rows, "not,enough"]) + "\n", encoding="utf-8")
    url = settings.redis_url.get_secret_value() if settings.redis_url else ""
    env = {"TRADEWATCH_REDIS_URL": url, "TRADEWATCH_NAMESPACE": settings.namespace, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "services.cli", "ingest", str(file), "--source", "comtrade"]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *extra], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )

    first, again = run(), run("--progress")
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout.splitlines()[-1])
    assert summary | {"file": ""} == {
        "file": "", "source": "comtrade", "read": 6, "published": 5, "duplicates": 0, "rejected": 1,
    }  # fmt: skip
    assert json.loads(again.stdout.splitlines()[-1])["duplicates"] == 5

    binary = tmp_path / "data.csv"
    binary.write_bytes(b"\x00\x01\x02")
    refused = subprocess.run(
        [*command[:4], str(binary), "--source", "comtrade"], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "binary content" in refused.stderr
    unknown = run("--source", "nope")
    assert unknown.returncode == 2
    assert "unknown source 'nope'" in unknown.stderr


async def test_a_sample_article_reaches_the_rules_that_fit_it(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    from services.rules.stage import RulesStage

    article = ROOT / "config/samples/article-hunchun-shipyard.txt"
    await run_burst(settings, lambda ctx: [IngestStage(ctx, [article]), RulesStage(ctx)])

    alerts = [json.loads(f[b"alert"]) for _, f in raw_redis.xrange(settings.streams.alerts)]
    rules = {a["rule_id"] for a in alerts}
    assert {"shipyard-equipment", "technical-assistance", "unscr2397-machinery"} <= rules, rules
    machinery = next(a for a in alerts if a["rule_id"] == "unscr2397-machinery")
    assert machinery["severity"] == "critical"  # second-hand, shipped in parts
