"""Hot reload against real files and a real server: a valid change swaps the whole rule set and
its version in Redis; an invalid one keeps the last good set live."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import redis

from schemas.report import ImportReport
from services.rules.engine import RuleSet, evaluate
from services.rules.reload import Reloader
from services.rules.stage import RulesStage
from services.runtime import Context
from services.yamlfile import ConfigError
from tests.helpers import ROOT, until

RULE = """version: 1
rules:
  - id: watched
    title: Watched
    severity: {severity}
    legal_basis: UNSCR 2397 OP7
    when: {{item: {{hs: ["84"]}}}}
"""


def touch_later(path: Path, text: str) -> None:
    """Write and move the mtime on by a second: coarse filesystems must still see a change."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


async def test_valid_change_swaps_the_set_and_invalid_one_keeps_it(
    ctx: Context, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULE.format(severity="low"), encoding="utf-8")
    catalog = tmp_path / "catalog.yaml"
    shutil.copy(ROOT / "config/catalog.yaml", catalog)
    settings = ctx.settings.model_copy(
        update={"rules_files": [rules], "catalog_file": catalog, "rules_reload_interval": 0}
    )
    stage = RulesStage(Context(settings, ctx.endpoint, ctx.redis))
    await stage.start()
    version_key = settings.streams.key("ruleset", "version")
    first = stage.ruleset
    assert first is not None
    assert raw_redis.get(version_key) == first.version.encode()
    assert stage.reloader is not None
    assert await stage.reloader.check() is None  # nothing changed

    def severity(ruleset: RuleSet | None) -> str:
        assert ruleset is not None
        r = ImportReport.model_validate(
            {"report_id": "r", "source": "t", "items": [{"description": "lathe"}]}
        )
        (alert,) = evaluate(r, ruleset, datetime(2026, 3, 10, tzinfo=UTC))
        return alert.severity.value

    touch_later(rules, RULE.format(severity="high"))
    outcome = await stage.reloader.check()
    assert isinstance(outcome, RuleSet)
    assert stage.ruleset is outcome
    assert severity(stage.ruleset) == "high"
    assert raw_redis.get(version_key) == outcome.version.encode() != first.version.encode()
    # Its rules too, for the tools that check against the live set (silence add).
    live = json.loads(raw_redis.get(settings.streams.key("ruleset", "rules")) or "{}")
    assert live["version"] == outcome.version
    assert set(live["rules"]) == {c.rule.id for c in outcome.rules}

    # A broken rule file: reported, and the last good set stays live.
    touch_later(rules, RULE.format(severity="urgent"))
    failed = await stage.reloader.check()
    assert isinstance(failed, ConfigError)
    assert f"{rules}:5: rules[0].severity: 'urgent' is not one of info, low, medium, high, critical" in str(
        failed
    )
    assert stage.ruleset is outcome
    assert raw_redis.get(version_key) == outcome.version.encode()
    assert await stage.reloader.check() is None  # reported once, not every round

    # The catalog is watched too: a broken catalog keeps the set; repairing it reloads.
    good_catalog = catalog.read_text(encoding="utf-8")
    touch_later(rules, RULE.format(severity="medium"))
    touch_later(catalog, good_catalog.replace("categories:\n", "categories:\n  : nameless\n", 1))
    assert isinstance(await stage.reloader.check(), ConfigError)
    assert stage.ruleset is outcome
    touch_later(catalog, good_catalog)
    repaired = await stage.reloader.check()
    assert isinstance(repaired, RuleSet)
    assert severity(stage.ruleset) == "medium"
    await stage.stop()


async def test_the_stage_polls_its_files(ctx: Context, raw_redis: redis.Redis, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULE.format(severity="low"), encoding="utf-8")
    settings = ctx.settings.model_copy(update={"rules_files": [rules], "rules_reload_interval": 0.05})
    stage = RulesStage(Context(settings, ctx.endpoint, ctx.redis))
    await stage.start()
    assert isinstance(stage.reloader, Reloader)
    first = stage.ruleset
    touch_later(rules, RULE.format(severity="critical"))
    version_key = settings.streams.key("ruleset", "version")

    def reloaded() -> bool:
        # The new set goes live first, then its version is published for `status`: both are seen.
        live = stage.ruleset
        return live is not first and live is not None and raw_redis.get(version_key) == live.version.encode()

    # A reload compiles the catalog: slow on a loaded machine, seen as soon as it is done.
    assert await until(reloaded), "the changed file was never reloaded"
    assert stage.ruleset is not first
    assert stage.ruleset is not None
    assert raw_redis.get(version_key) == stage.ruleset.version.encode()
    await stage.stop()
