"""The notify stage against a real server and real channels: an HTTP receiver and an SMTP server."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import redis
from pytest_httpserver import HTTPServer

from schemas.alert import Alert
from services.notify.stage import NotifyStage
from services.rules.stage import RulesStage
from services.settings import Settings
from tests.fixtures.news_facts import EXPECTED_RULES, NEWS_REPORT
from tests.pipeline import Receiver, run_burst, with_channels


async def alerts_for_news(settings: Settings, raw_redis: redis.Redis) -> list[Alert]:
    raw_redis.xadd(settings.streams.reports, {"report": json.dumps(NEWS_REPORT)})
    await run_burst(settings, lambda ctx: [RulesStage(ctx)])
    return [Alert.model_validate_json(f[b"alert"]) for _, f in raw_redis.xrange(settings.streams.alerts)]


async def test_one_report_is_one_message_listing_every_reason(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    s = with_channels(settings, tmp_path, [(receiver.url, "hook")])
    alerts = await alerts_for_news(s, raw_redis)

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert len(receiver.messages) == 1
    message = receiver.messages[0]
    assert message["title"].startswith("[CRITICAL]")
    # The news report is dated March 2026, past the backfill horizon when it arrives: its rule
    # over time (the first machinery heading) fires a backfill alert, recorded and never sent.
    assert [a.rule_id for a in alerts if a.backfill] == ["new-machinery-heading"]
    assert sorted(receiver.alert_ids()) == sorted(a.alert_id for a in alerts if not a.backfill)
    assert {a["rule_id"] for a in message["alerts"]} >= EXPECTED_RULES
    history = raw_redis.xrange(s.streams.key("deliveries"))
    assert {f[b"outcome"] for _, f in history} == {b"sent"}


async def test_redelivered_alert_is_not_sent_again(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    s = with_channels(settings, tmp_path, [(receiver.url, "hook")])
    await alerts_for_news(s, raw_redis)
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])
    sent = len(receiver.alert_ids())

    # The same alerts arrive again, as after a rules-stage crash between XADD and XACK.
    for _, fields in raw_redis.xrange(s.streams.alerts):
        raw_redis.xadd(s.streams.alerts, fields)
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert len(receiver.alert_ids()) == sent
    assert len(set(receiver.alert_ids())) == sent


async def test_failing_receiver_is_retried_until_it_recovers_without_duplicates(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    receiver.fail_next = 2
    s = with_channels(settings, tmp_path, [(receiver.url, "hook")])
    alerts = await alerts_for_news(s, raw_redis)

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert sorted(receiver.alert_ids()) == sorted(a.alert_id for a in alerts if not a.backfill)
    outcomes = [f[b"outcome"] for _, f in raw_redis.xrange(s.streams.key("deliveries"))]
    assert outcomes.count(b"failed") >= 2 * len(alerts) // len(alerts)
    groups = {g["name"].decode(): g for g in raw_redis.xinfo_groups(s.streams.alerts)}
    assert groups["notify"]["pending"] == 0


async def test_a_failing_channel_does_not_resend_on_the_working_one(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    good = Receiver(httpserver, "/good")
    flaky = Receiver(httpserver, "/flaky")
    flaky.fail_next = 1
    s = with_channels(settings, tmp_path, [(good.url, "hook"), (flaky.url, "hook")])
    await alerts_for_news(s, raw_redis)

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert len(good.messages) == 1
    assert len(flaky.messages) == 1


async def test_email_through_a_local_smtp_server_is_multipart_html_and_text(
    settings: Settings, raw_redis: redis.Redis, tmp_path: Path, smtp: object
) -> None:
    controller, box = smtp  # type: ignore[misc]
    url = (
        f"mailto://127.0.0.1:{controller.port}?to=sanctions@example.org&from=tradewatch@example.org"
        "&mode=insecure&format=html"
    )
    s = with_channels(
        settings,
        tmp_path,
        [(url, "mail")],
        ("version: 1\nsubscriptions:\n  - name: mail\n    channels: [mail]\n    min_severity: high\n"),
    )
    await alerts_for_news(s, raw_redis)

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert len(box.messages) == 1
    message = email.message_from_bytes(box.messages[0], policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert str(message["Subject"]).startswith("[CRITICAL] ")
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    text, markup = plain.get_content(), html.get_content()
    # Real HTML: a heading, the findings as a list, the legal basis of each reason.
    assert "<h2" in markup
    assert "<ol" in markup
    assert "<li" in markup
    assert "Legal basis: UNSCR 2397" in markup
    # A plain part a person reads: one line per fact and per reason, not one blob.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert len(lines) > 20
    assert "Findings" in lines
    assert any(line.startswith("Route: China (CN) -> North Korea (KP)") for line in lines)
    assert any(line.startswith("- Shipyard equipment to the DPRK [CRITICAL]") for line in lines)
    assert "<" not in text
    assert "medical-imaging-review" not in box.messages[0].decode(
        "utf-8", "replace"
    )  # medium: below this subscription's minimum
