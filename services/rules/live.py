"""What the rule set in force is, stored where other tools read it without loading rule files.

``<namespace>:ruleset:version`` holds its version; ``<namespace>:ruleset:rules`` a JSON document
``{"version": ..., "rules": {rule id: [tags]}}`` of the rules that can fire, which ``tradewatch
silence add`` checks a ``rule_id`` or ``tag`` matcher against. Written at start and after each
reload, by whichever rules worker loaded the set.
"""

from __future__ import annotations

import json

import redis.asyncio as aredis

from schemas.streams import StreamNames
from services.rules.engine import RuleSet


def document(ruleset: RuleSet) -> str:
    rules = {c.rule.id: list(c.rule.tags) for c in ruleset.rules}
    return json.dumps({"version": ruleset.version, "rules": rules}, ensure_ascii=False, sort_keys=True)


async def publish(redis: aredis.Redis, names: StreamNames, ruleset: RuleSet) -> None:
    """Store the live set's version and its rules (two plain SETs: readers tolerate a moment between)."""
    await redis.set(names.key("ruleset", "version"), ruleset.version)
    await redis.set(names.key("ruleset", "rules"), document(ruleset))
