"""Malformed entries through the real stages: each one dead-lettered with a reason, the rest go on."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from pytest_httpserver import HTTPServer

from services.notify.stage import NotifyStage
from services.rules.stage import RulesStage
from services.settings import Settings
from tests.fixtures.news_facts import NEWS_REPORT
from tests.pipeline import Receiver, run_burst, with_channels

BAD: list[dict[bytes, bytes]] = [
    {b"report": b"\xff\xfe not utf-8"},
    {b"report": b"{not json"},
    {b"report": b"[" * 5000 + b"]" * 5000},
    {b"report": json.dumps({"report_id": 42, "items": "tractors"}).encode()},
    {b"report": json.dumps({"report_id": "x", "source": "s"}).encode()},  # neither items nor text
    {b"report": json.dumps(NEWS_REPORT | {"surprise": 1}).encode()},
    {
        b"report": json.dumps(
            NEWS_REPORT | {"items": [{"description": "\u202e" * 10, "quantity": -1}]}
        ).encode()
    },
    {b"report": json.dumps({"report_id": "x" * 2_000_000}).encode()},
    {b"nothing": b"here"},
    {b"report": b"null"},
]


async def test_rules_stage_dead_letters_every_bad_report_with_a_reason(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    names = settings.streams
    for fields in BAD:
        raw_redis.xadd(names.reports, fields)  # type: ignore[arg-type]
    raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})

    await run_burst(settings, lambda ctx: [RulesStage(ctx)])

    dead = raw_redis.xrange(names.reports_dead)
    assert len(dead) == len(BAD)
    assert all(f[b"dead.reason"].strip() for _, f in dead)
    assert raw_redis.xlen(names.alerts) > 0  # the good report went through beside them
    assert raw_redis.xpending(names.reports, "rules")["pending"] == 0


async def test_notify_stage_dead_letters_every_bad_alert_with_a_reason(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    s = with_channels(settings, tmp_path, [(receiver.url, "hook")])
    names = s.streams
    for fields in BAD:
        raw_redis.xadd(names.alerts, {k.replace(b"report", b"alert"): v for k, v in fields.items()})

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    dead = raw_redis.xrange(names.alerts_dead)
    assert len(dead) == len(BAD)
    assert all(f[b"dead.reason"].strip() for _, f in dead)
    assert receiver.messages == []
    assert raw_redis.xpending(names.alerts, "notify")["pending"] == 0
