"""The notifier's pure decisions: routing, silences, re-alert windows, buckets, due times, backoff."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.alert import MatchedItem, Severity
from services.notify import plan
from services.notify.render import Renderer, TemplateProblem
from services.notify.silences import Silence, parse_matchers
from services.notify.subscriptions import Subscription, load_subscriptions
from services.yamlfile import ConfigError
from tests.helpers import make_alert as alert


def sub(**fields: object) -> Subscription:
    return Subscription.model_validate({"name": "team", "channels": ["hook"], **fields})


def silence(matchers: dict[str, str], start: float = 0, end: float = 100) -> Silence:
    return Silence(
        id="s-1", matchers=matchers, created_by="kim", reason="known case", created_at=start, expires_at=end
    )


def test_bucket_is_the_rule_group_key_unless_the_subscription_groups_or_digests() -> None:
    a = alert(group_key="report=r-1")
    assert plan.bucket_for(sub(), a) == "g:report=r-1"
    by_crossing = sub(group_by=["crossing", "category"])
    assert plan.bucket_for(by_crossing, a) == plan.bucket_for(
        by_crossing, alert(report_id="r-2", crossing="HUNCHUN rason")
    )
    assert plan.bucket_for(by_crossing, a) != plan.bucket_for(by_crossing, alert(crossing="Dandong-Sinuiju"))
    digest = sub(mode="digest", digest_interval="1h")
    assert (
        plan.bucket_for(digest, a) == plan.bucket_for(digest, alert(crossing="Dandong-Sinuiju")) == "digest"
    )


def test_due_after_the_group_wait_or_at_the_next_digest_tick() -> None:
    assert plan.due_at(sub(), 1000.0, default_wait=2) == 1002.0
    assert plan.due_at(sub(group_wait="30s"), 1000.0, default_wait=2) == 1030.0
    hourly = sub(mode="digest", digest_interval="1h")
    assert plan.due_at(hourly, 3600 * 5 + 10, default_wait=2) == 3600 * 6
    assert plan.due_at(hourly, 3600 * 6, default_wait=2) == 3600 * 7


def test_digest_needs_an_interval_and_only_digest_takes_one() -> None:
    with pytest.raises(ValidationError, match="digest_interval"):
        sub(mode="digest")
    with pytest.raises(ValidationError, match="only with mode: digest"):
        sub(digest_interval="1h")


def test_realert_window_comes_from_the_rule_unless_the_subscription_sets_one() -> None:
    assert plan.realert_window(sub(), alert()) == 0
    assert plan.realert_window(sub(), alert(realert=86400.0)) == 86400
    assert plan.realert_window(sub(realert="1h"), alert(realert=86400.0)) == 3600
    assert plan.realert_window(sub(realert=0), alert(realert=86400.0)) == 0
    assert plan.realert_window(sub(), alert(realert=0.2)) == 1


def test_backoff_doubles_is_capped_and_jittered_within_half_to_full() -> None:
    rng = random.Random(7)
    for attempt, full in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)):
        delays = [plan.backoff(attempt, 2.0, 60.0, rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len({round(d, 6) for d in delays}) > 100  # jittered, not one value


def test_route_finds_channels_silence_and_window_per_subscription() -> None:
    subs = [
        sub(name="all"),
        sub(name="mail", channels=["mail"], min_severity="critical", realert="1d"),
        sub(name="radio", rules=["radio-telecom"]),
    ]
    channels = [("hook-1", frozenset({"hook"})), ("mail-1", frozenset({"mail"}))]
    quiet = silence({"rule_id": "shipyard-equipment", "crossing": "hunchun rason", "subscription": "mail"})
    routes = plan.route(alert(), subs, channels, [quiet], now=50)
    assert [(r.subscription.name, r.channels, r.silence, r.window) for r in routes] == [
        ("all", ["hook-1"], None, 0),
        ("mail", ["mail-1"], "s-1", 86400),
    ]
    later = plan.route(alert(), subs, channels, [quiet], now=150)  # the silence has ended
    assert [r.silence for r in later] == [None, None]


def test_silence_matchers() -> None:
    a = alert(importer="Korea Ryugyong Trading Co.")
    assert silence({"hs": "84"}).matches(a, "x")
    assert not silence({"hs": "85"}).matches(a, "x")
    assert silence({"importer": "korea ryugyong trading co"}).matches(a, "x")
    assert silence({"severity": "CRITICAL", "country": "kp", "tag": "shipyard"}).matches(a, "x")
    assert not silence({"severity": "critical", "category": "vessels"}).matches(a, "x")
    assert silence({"category": "machine-tools"}).matches(a, "x")
    assert not silence({"subscription": "other"}).matches(a, "x")
    assert parse_matchers(["rule_id=x", "crossing=Dandong-Sinuiju"]) == {
        "rule_id": "x",
        "crossing": "Dandong-Sinuiju",
    }
    for bad, message in ((["color=red"], "cannot be matched"), (["rule_id"], "KEY=VALUE"), ([], "at least one"),
                         (["rule_id=a", "rule_id=b"], "twice")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_matchers(bad)


def test_a_group_renders_one_case_per_report() -> None:
    alerts = [
        alert(alert_id=f"a-{n}", report_id=f"r-{n}", url=f"https://example.org/{n}",
              matched_items=[MatchedItem(index=0, description=f"lathe {n}", hs_code="8458.11")])
        for n in range(3)
    ]  # fmt: skip
    renderer = Renderer()
    html = renderer.render(alerts, "html")
    assert (
        html.title
        == "[CRITICAL] 3 cases at Hunchun-Rason; the worst: lathe 0 to North Korea via Hunchun-Rason"
    )
    assert html.body.count("<h2") == 3  # one heading per case
    assert "Case 3 of 3" in html.body
    assert 'href="https://example.org/2"' in html.body
    md = renderer.render(alerts, "markdown").body
    for n in range(3):
        assert f"lathe {n} (HS 8458.11)" in md
        assert f"`r-{n}`" in md
    text = renderer.render([alert(severity=Severity.HIGH)], "text")
    assert text.title == "[HIGH] CNC cutting machine <b> to North Korea via Hunchun-Rason"
    lines = text.body.splitlines()
    for start in (
        "Report:   r-1",
        "Route:    ? -> North Korea (KP), crossing Hunchun-Rason",
        "1. HIGH: CNC cutting machine <b> (HS 8456)",
        "   - Shipyard equipment to the DPRK [HIGH]",
        "       Legal basis: UNSCR 2397 OP7",
        "Alerts: a-1",
    ):
        assert any(line.startswith(start) for line in lines), (start, text.body)


def test_template_overrides_are_checked_at_load(tmp_path: Path) -> None:
    (tmp_path / "ok.j2").write_text("ALERT {{ alerts | length }}: {{ alerts[0].rule_id }}")
    (tmp_path / "syntax.j2").write_text("line one\n{% for a in alerts %}")
    (tmp_path / "undefined.j2").write_text("{{ no_such_variable }}")
    (tmp_path / "escape.j2").write_text("{{ alerts.__class__.__mro__ }}")
    assert (
        Renderer(overrides={"text": tmp_path / "ok.j2"}).render([alert()], "text").body
        == "ALERT 1: shipyard-equipment"
    )
    with pytest.raises(TemplateProblem, match=r"syntax.j2:2"):
        Renderer(overrides={"text": tmp_path / "syntax.j2"})
    with pytest.raises(TemplateProblem, match="trial render failed.*no_such_variable"):
        Renderer(overrides={"html": tmp_path / "undefined.j2"})
    with pytest.raises(TemplateProblem, match="trial render failed"):
        Renderer(overrides={"title": tmp_path / "escape.j2"})

    subs = tmp_path / "subscriptions.yaml"
    subs.write_text(
        "version: 1\nsubscriptions:\n  - name: a\n    channels: [hook]\n    templates: {text: ok.j2}\n"
        "  - name: b\n    channels: [hook]\n    templates:\n      html: missing.j2\n"
    )
    with pytest.raises(ConfigError) as error:
        load_subscriptions(subs)
    assert "subscriptions.yaml:8: subscription 'b'" in str(error.value)
    assert "missing.j2: cannot be read" in str(error.value)
    subs.write_text(
        "version: 1\nsubscriptions:\n  - name: a\n    channels: [hook]\n    templates: {text: ok.j2}\n"
    )
    (loaded,) = load_subscriptions(subs)
    assert loaded.templates["text"] == str(tmp_path / "ok.j2")
