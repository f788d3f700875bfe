"""The whole flow: a report in, alerts out at a real HTTP channel, through a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from pytest_httpserver import HTTPServer

from services.ingest.stage import IngestStage
from services.notify.stage import NotifyStage
from services.rules.stage import RulesStage
from services.settings import Settings
from tests.fixtures.news_facts import EXPECTED_RULES, NEWS_REPORT
from tests.helpers import ROOT
from tests.pipeline import Receiver, redis_cli, run_burst, with_channels, worker_env

pytestmark = pytest.mark.slow  # whole flows: stages in process and worker processes


def received_rules(receiver: Receiver) -> set[str]:
    return {a["rule_id"] for m in receiver.messages for a in m["alerts"]}


async def test_news_report_file_to_http_channel(
    settings: Settings, httpserver: HTTPServer, tmp_path: Path, raw_redis: redis.Redis
) -> None:
    receiver = Receiver(httpserver)
    s = with_channels(settings, tmp_path, [(receiver.url, "hook")])
    feed = tmp_path / "news.jsonl"
    feed.write_text(json.dumps(NEWS_REPORT) + "\n", encoding="utf-8")

    await run_burst(s, lambda ctx: [IngestStage(ctx, [feed]), RulesStage(ctx), NotifyStage(ctx)])

    assert received_rules(receiver) >= EXPECTED_RULES
    assert len(receiver.messages) == 1  # one report, one message, every reason in it
    body = receiver.messages[0]  # parsed once: the cases and alerts are objects of the payload
    (case,) = body["cases"]
    assert case["report_id"] == NEWS_REPORT["report_id"]
    assert "Findings" in body["message"]
    shipyard = next(a for a in body["alerts"] if a["rule_id"] == "shipyard-equipment")
    assert shipyard["legal_basis"].startswith("UNSCR 2397")
    assert shipyard["crossing"] == "Hunchun-Rason (Wonjong-ri)"  # the catalog's name for it

    # Feeding the same file again: nothing new is published, nothing is sent twice.
    await run_burst(s, lambda ctx: [IngestStage(ctx, [feed]), RulesStage(ctx), NotifyStage(ctx)])
    assert len(receiver.messages) == 1


def test_report_published_with_redis_cli_reaches_the_channel_through_worker_processes(
    settings: Settings, httpserver: HTTPServer, tmp_path: Path
) -> None:
    cli = redis_cli("the any-language producer test")
    receiver = Receiver(httpserver)
    s = with_channels(settings, tmp_path, [(receiver.url, "hook")])
    url = s.redis_url.get_secret_value() if s.redis_url else ""
    # A producer in another language: a plain XADD with the report as JSON in the field "report".
    subprocess.run(
        [cli, "-u", url, "XADD", s.streams.reports, "*", "report", json.dumps(NEWS_REPORT)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    env = worker_env(s)
    tradewatch = [sys.executable, "-m", "services.cli"]
    for stage in ("rules", "notify"):
        done = subprocess.run(
            [*tradewatch, "worker", stage, "--burst"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
        assert any(line.get("event") == "drained" for line in lines), done.stderr[-2000:]

    assert received_rules(receiver) >= EXPECTED_RULES
    # The alerts stream is readable from any language too: plain JSON in the field "alert".
    reply = subprocess.run(
        [cli, "-u", url, "XRANGE", s.streams.alerts, "-", "+", "COUNT", "1"],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    alert_json = next(line for line in reply.stdout.splitlines() if line.startswith("{"))
    assert json.loads(alert_json)["report_id"] == NEWS_REPORT["report_id"]
