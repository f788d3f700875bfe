"""``tradewatch silence add`` against a real server: matchers checked against the live rule set."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from click.testing import Result
from typer.testing import CliRunner

from services.cli import app as cli
from services.logging import configure as configure_logging
from services.settings import Settings
from tests.helpers import ROOT


def tw(settings: Settings, tmp_path: Path, *args: str) -> Result:
    env = {
        "TRADEWATCH_REDIS_URL": settings.redis_url.get_secret_value() if settings.redis_url else "",
        "TRADEWATCH_NAMESPACE": settings.namespace,
        "TRADEWATCH_CATALOG_FILE": str(ROOT / "config/catalog.yaml"),
        "TRADEWATCH_RULES_FILES": str(ROOT / "config/rules.yaml"),
        "TRADEWATCH_SUBSCRIPTIONS_FILE": str(ROOT / "config/subscriptions.yaml"),
        "TRADEWATCH_SETTINGS_FILE": str(tmp_path / "none.yaml"),
    }
    result = CliRunner().invoke(
        cli, ["silence", "add", *args, "--for", "1d", "--by", "kim", "--reason", "r"], env=env
    )
    configure_logging()  # the command logged to the runner's stream, now closed
    return result


def stored(raw_redis: redis.Redis, settings: Settings) -> list[dict[str, str]]:
    key = f"{settings.streams.notify_namespace}:notify:silences"
    return [json.loads(v)["matchers"] for v in raw_redis.hvals(key)]


def test_rule_ids_are_checked_against_the_live_rule_set(
    settings: Settings, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    # What a rules worker stores when it loads a set (services/rules/live.py).
    live = {"version": "v-live", "rules": {"only-live-rule": ["live-tag"]}}
    raw_redis.set(settings.streams.key("ruleset", "rules"), json.dumps(live))
    refused = tw(settings, tmp_path, "--match", "rule_id=shipyard-equipment")
    assert refused.exit_code == 2
    assert "the silence would hold nothing, so it was not added" in refused.output
    assert "no rule has the id 'shipyard-equipment' in the live rule set (version v-live)" in refused.output
    assert tw(settings, tmp_path, "--match", "rule_id=only-live-rule").exit_code == 0
    assert stored(raw_redis, settings) == [{"rule_id": "only-live-rule"}]


def test_without_a_live_rule_set_the_rule_files_are_used(
    settings: Settings, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    refused = tw(settings, tmp_path, "--match", "rule_id=shipyard-equipmnt", "--match", "crossing=Hunchon")
    assert refused.exit_code == 2
    assert (
        "rule_id=shipyard-equipmnt: no rule has the id 'shipyard-equipmnt' in the rule files"
        in refused.output
    )
    assert "did you mean 'shipyard-equipment'?" in refused.output
    assert "crossing=Hunchon: 'Hunchon' is not a crossing the catalog knows" in refused.output
    assert stored(raw_redis, settings) == []
    added = tw(settings, tmp_path, "--match", "rule_id=shipyard-equipment", "--match", "crossing=Hunchun")
    assert added.exit_code == 0, added.output
    assert stored(raw_redis, settings) == [
        {"rule_id": "shipyard-equipment", "crossing": "Hunchun-Rason (Wonjong-ri)"}
    ]
