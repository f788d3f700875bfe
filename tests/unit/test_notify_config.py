"""Channels and subscriptions are checked at load; secrets never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.alert import MatchedItem, Severity
from services.notify.channels import load_channels
from services.notify.render import Renderer
from services.notify.subscriptions import load_subscriptions
from services.redact import redact
from services.yamlfile import ConfigError
from tests.helpers import make_alert as alert


def test_missing_file_and_empty_config_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_channels(tmp_path / "absent.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("version: 1\nurls: []\n")
    with pytest.raises(ConfigError, match="loads no channel"):
        load_channels(empty)
    bad_scheme = tmp_path / "bad.yaml"
    bad_scheme.write_text(
        "version: 1\nurls:\n  - json://127.0.0.1/x:\n      - tag: a\n  - nosuchscheme://x:\n      - tag: b\n"
    )
    with pytest.raises(ConfigError, match="2 URLs declared but Apprise loaded 1"):
        load_channels(bad_scheme)


def test_secrets_come_from_the_environment_and_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text("version: 1\nurls:\n  - json://127.0.0.1:9/${HOOK_TOKEN}:\n      - tag: hook\n")
    with pytest.raises(ConfigError, match=r"channels.yaml:3: \$\{HOOK_TOKEN\} is not set"):
        load_channels(path)
    monkeypatch.setenv("HOOK_TOKEN", "tok-9f8e7d6c5b")
    (channel,) = load_channels(path)
    assert "tok-9f8e7d6c5b" not in channel.display
    assert channel.tags == {"hook"}
    assert (
        redact("failed to POST json://127.0.0.1:9/tok-9f8e7d6c5b: 503")
        == "failed to POST json://127.0.0.1:9/***: 503"
    )


def test_redaction_of_credentials_in_urls() -> None:
    assert redact("mailto://user:hunter22@smtp.example.org?to=x") == "mailto://***@smtp.example.org?to=x"
    assert redact("https://h/x?token=abc123&a=1") == "https://h/x?token=***&a=1"


def test_subscription_naming_a_tag_no_channel_carries_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "subs.yaml"
    path.write_text("version: 1\nsubscriptions:\n  - name: team\n    channels: [slack]\n")
    with pytest.raises(
        ConfigError, match="subs.yaml:4: subscription 'team': no channel carries the tag 'slack'"
    ):
        load_subscriptions(path, ["hook"])


def test_subscription_filters(tmp_path: Path) -> None:
    path = tmp_path / "subs.yaml"
    path.write_text(
        "version: 1\nsubscriptions:\n"
        "  - {name: high, channels: [a], min_severity: high}\n"
        "  - {name: medical, channels: [a], categories: [medical-devices]}\n"
        "  - {name: rason, channels: [a], crossings: [rason]}\n"
        "  - {name: rules, channels: [a], rules: [vessels], tags: [shipyard]}\n"
    )
    subs = {s.name: s for s in load_subscriptions(path, ["a"])}
    a = alert()
    assert subs["high"].wants(a)
    assert not subs["high"].wants(alert(severity=Severity.MEDIUM))
    assert not subs["medical"].wants(a)
    assert subs["rason"].wants(a)
    assert not subs["rason"].wants(alert(crossing="Dandong-Sinuiju"))
    assert not subs["rules"].wants(a)


def test_render_every_format_with_the_reasons() -> None:
    renderer = Renderer()
    alerts = [
        alert(),
        alert(alert_id="a-2", rule_id="radio-telecom", title="Radio", severity=Severity.HIGH),
    ]
    for fmt in ("text", "markdown", "html", "json"):
        message = renderer.render(alerts, fmt)
        # One report: one case, headed by what was seen and where it went.
        assert message.title == "[CRITICAL] CNC cutting machine <b> to North Korea via Hunchun-Rason"
        assert message.format == fmt
        assert message.severity == "critical"
        assert "UNSCR 2397 OP7" in message.body
        assert "8456" in message.body
    html = renderer.render(alerts, "html").body
    assert "<ol" in html
    assert "&lt;b&gt;" in html  # the report's words are escaped in HTML
    assert "<b>" not in html


def test_a_quote_shows_the_words_that_named_the_item_marked_and_escaped() -> None:
    quoted = MatchedItem(
        index=0, description="lathes", hs_code="8458", quote="Two <used> lathes & one press",
        marks=[(4, 10), (11, 17)],
    )  # fmt: skip
    alerts = [alert(matched_items=[quoted], unrecognised=["gearbox"])]
    renderer = Renderer()
    text = renderer.render(alerts, "text").body
    assert 'in the text: "Two «<used>» «lathes» & one press"' in text
    assert "Not recognised (no HS code, no known word; look at these): gearbox" in text
    assert "> Two **<used>** **lathes** & one press" in renderer.render(alerts, "markdown").body
    html = renderer.render(alerts, "html").body
    assert "Two <mark>&lt;used&gt;</mark> <mark>lathes</mark> &amp; one press" in html
