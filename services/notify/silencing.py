"""Adding a silence as the command line and the console both do it: the matchers parsed, each
checked against what alerts can carry (the live rule set, the catalog, the nomenclature, the
subscriptions), then stored. Any problem is a ValueError whose text says what and why."""

from __future__ import annotations

import json
import time

import redis.asyncio as aredis

from schemas.durations import parse_duration
from schemas.rules import RuleFile
from services.goods.catalog import load_catalog
from services.goods.hscodes import load_nomenclature
from services.notify.silences import Known, Silence, SilenceStore, check_matchers, parse_matchers
from services.notify.subscriptions import load_subscriptions
from services.settings import Settings
from services.yamlfile import ConfigError, load


async def live_rules(
    redis: aredis.Redis, settings: Settings
) -> tuple[dict[str, list[str]] | None, str, str | None]:
    """Rule ids and tags of the rule set in force (as a rules worker stored it), else of the rule
    files configured here, else None (not checked); with where they came from and a note when
    they could not be read."""
    raw = await redis.get(settings.streams.key("ruleset", "rules"))
    if raw is not None:
        live = json.loads(raw)
        rules = {str(k): [str(t) for t in v] for k, v in live["rules"].items()}
        return rules, f"the live rule set (version {live['version']})", None
    found: dict[str, list[str]] = {}
    try:
        for path in settings.rules_files:
            parsed = load(path).validate(RuleFile)
            found.update({r.id: list(r.tags) for r in parsed.rules if r.enabled})
    except ConfigError as error:
        note = (
            "no rules worker has stored its rule set and the rule files have errors, "
            f"so rule ids and tags are not checked ({str(error).splitlines()[0]})"
        )
        return None, "", note
    return found, f"the rule files ({', '.join(str(p) for p in settings.rules_files)})", None


async def vocabulary(
    redis: aredis.Redis, settings: Settings, matchers: dict[str, str]
) -> tuple[Known, str | None]:
    """What the matchers given are checked against (only what they need is loaded), and a note
    when the rules could not be; ConfigError when the configuration has errors."""
    catalog = nomenclature = subscriptions = None
    if {"crossing", "category"} & set(matchers):
        catalog = load_catalog(settings.catalog_file)
    if "hs" in matchers and settings.nomenclature_file is not None:
        nomenclature = load_nomenclature(settings.nomenclature_file)
    if "subscription" in matchers:
        subscriptions = [s.name for s in load_subscriptions(settings.subscriptions_file)]
    rules, rules_from, note = None, "the live rule set", None
    if {"rule_id", "tag"} & set(matchers):
        rules, rules_from, note = await live_rules(redis, settings)
    return Known(catalog, rules, rules_from, subscriptions, nomenclature), note


def checked_request(match: list[str], duration: str, by: str, reason: str) -> tuple[dict[str, str], float]:
    """The matchers and the length in seconds, or ValueError saying what is wrong."""
    matchers = parse_matchers(match)
    seconds = parse_duration(duration)
    if seconds <= 0:
        raise ValueError("a silence lasts longer than 0 (e.g. 2h, 7d)")
    if not by.strip() or not reason.strip():
        raise ValueError("a silence needs who adds it and a reason")
    return matchers, seconds


async def add_silence(
    redis: aredis.Redis, settings: Settings, match: list[str], duration: str, by: str, reason: str
) -> tuple[Silence, str | None]:
    """Check and store a silence: the silence and a note, or ValueError (bad input, or matchers no
    alert could satisfy) or ConfigError (the configuration it is checked against is broken)."""
    matchers, seconds = checked_request(match, duration, by, reason)
    known, note = await vocabulary(redis, settings, matchers)
    try:
        checked = check_matchers(matchers, known)
    except ValueError as error:
        raise ValueError(f"the silence would hold nothing, so it was not added:\n{error}") from None
    store = SilenceStore(redis, settings.streams.notify_namespace)
    return await store.add(checked, seconds, by.strip(), reason.strip(), time.time()), note
