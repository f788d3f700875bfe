"""Silences: "do not send alerts matching this, until then, because ...", with an owner.

A silence holds matchers (``rule_id=radio-telecom``, ``crossing=Dandong-Sinuiju``); an alert is
silenced for a subscription when every matcher holds. A matcher no alert could ever satisfy (a
rule id the live rule set lacks, a crossing or category the catalog does not know, a severity,
country or HS chapter that does not exist) is refused when the silence is added
(:func:`check_matchers`), with what it may have meant. Silenced alerts are recorded in the
alert's history and counted per silence, never sent. Stored in one Redis hash, one JSON
document per silence; matching is pure.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aredis
from pydantic import Field

from schemas.alert import Alert, Severity
from schemas.base import StrictModel
from schemas.countries import country_code
from services.goods import hscodes, vocabulary
from services.goods.catalog import Catalog
from services.goods.hscodes import Nomenclature
from services.notify.keys import NotifyKeys
from services.textmatch import name_key
from services.wire import as_text
from services.yamlfile import did_you_mean

MATCH_KEYS: dict[str, str] = {
    "rule_id": "rule id",
    "severity": "severity (info, low, medium, high, critical)",
    "crossing": "crossing name (case and spacing blind)",
    "report_id": "report id",
    "source": "report source",
    "tag": "one of the rule's tags",
    "category": "a category of a matched item",
    "hs": "an HS code prefix of a matched item",
    "country": "origin or destination country",
    "importer": "importer name (case and spacing blind)",
    "subscription": "subscription name",
}


class Silence(StrictModel):
    id: str
    matchers: dict[str, str] = Field(min_length=1)
    created_by: str
    reason: str
    created_at: float
    expires_at: float

    def active(self, now: float) -> bool:
        return self.created_at <= now < self.expires_at

    def audited(self) -> dict[str, Any]:
        """What the audit trail records of a silence: who, what, from and until when, why."""
        return {
            "matchers": self.matchers,
            "reason": self.reason,
            "by": self.created_by,
            "from": datetime.fromtimestamp(self.created_at, UTC),
            "until": datetime.fromtimestamp(self.expires_at, UTC),
        }

    def matches(self, alert: Alert, subscription: str) -> bool:
        return all(_holds(key, value, alert, subscription) for key, value in self.matchers.items())


def _holds(key: str, value: str, alert: Alert, subscription: str) -> bool:
    want = value.strip()
    if key == "rule_id":
        return alert.rule_id == want
    if key == "severity":
        return alert.severity.value == want.lower()
    if key == "crossing":
        return alert.crossing is not None and name_key(alert.crossing) == name_key(want)
    if key == "importer":
        return alert.importer is not None and name_key(alert.importer) == name_key(want)
    if key == "report_id":
        return alert.report_id == want
    if key == "source":
        return alert.source == want
    if key == "tag":
        return want in alert.tags
    if key == "category":
        return any(want in item.categories for item in alert.matched_items)
    if key == "hs":
        prefix = want.replace(".", "")
        return any(i.hs_code and i.hs_code.replace(".", "").startswith(prefix) for i in alert.matched_items)
    if key == "country":
        return want.upper() in (alert.origin_country, alert.destination_country)
    if key == "subscription":
        return subscription == want
    return False


def parse_matchers(pairs: Sequence[str]) -> dict[str, str]:
    """``["rule_id=x", "crossing=Hunchun-Rason"]`` -> a dict; ValueError with the keys accepted."""
    matchers: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise ValueError(f"{pair!r}: write KEY=VALUE, e.g. rule_id=radio-telecom")
        if key not in MATCH_KEYS:
            raise ValueError(
                f"{key!r} cannot be matched; use one of: {', '.join(MATCH_KEYS)}{did_you_mean(key, MATCH_KEYS)}"
            )
        if key in matchers:
            raise ValueError(f"{key!r} is given twice: a silence needs every matcher to hold")
        matchers[key] = value.strip()
    if not matchers:
        raise ValueError("give at least one --match KEY=VALUE")
    return matchers


@dataclass(frozen=True)
class Known:
    """What silence matchers are checked against; None: not known here, so not checked."""

    catalog: Catalog | None = None
    rules: Mapping[str, Sequence[str]] | None = None
    """The live rule set: rule id -> its tags."""
    rules_from: str = "the live rule set"
    subscriptions: Collection[str] | None = None
    nomenclature: Nomenclature | None = None


def check_matchers(matchers: Mapping[str, str], known: Known) -> dict[str, str]:
    """The matchers with their values as alerts carry them (``country=North Korea`` -> ``KP``,
    ``crossing=丹东`` -> ``Dandong-Sinuiju``, ``severity=HIGH`` -> ``high``), or ValueError with one
    sentence per value that no alert could ever carry, each with what it may have meant."""
    checked: dict[str, str] = {}
    problems: list[str] = []
    for key, value in matchers.items():
        try:
            checked[key] = _checked(key, value, known)
        except ValueError as error:
            problems.append(f"{key}={value}: {error}")
    if problems:
        raise ValueError("\n".join(problems))
    return checked


def _checked(key: str, value: str, known: Known) -> str:
    if key == "severity":
        names = [s.value for s in Severity]
        if value.lower() not in names:
            raise ValueError(
                f"{value!r} is not a severity; use one of {', '.join(names)}{did_you_mean(value, names)}"
            )
        return value.lower()
    if key == "country":
        return country_code(value)
    if key == "hs":
        code = value.replace(".", "").replace(" ", "")
        if not code.isdigit() or not 2 <= len(code) <= 10:
            raise ValueError(f"{value!r} is not an HS code or prefix (2 to 10 digits, dots allowed)")
        if (problem := hscodes.code_problem(code, known.nomenclature)) is not None:
            raise ValueError(problem)
        return code
    if key == "crossing" and known.catalog is not None:
        return vocabulary.crossing(known.catalog, value)
    if key == "category" and known.catalog is not None:
        return vocabulary.category(known.catalog, value)
    if key == "rule_id" and known.rules is not None and value not in known.rules:
        raise ValueError(
            f"no rule has the id {value!r} in {known.rules_from}, so nothing would be held"
            + did_you_mean(value, known.rules)
        )
    if key == "tag" and known.rules is not None:
        tags = {t for ts in known.rules.values() for t in ts}
        if value not in tags:
            raise ValueError(
                f"no rule of {known.rules_from} has the tag {value!r}, so nothing would be held"
                + did_you_mean(value, tags)
            )
    if key == "subscription" and known.subscriptions is not None and value not in known.subscriptions:
        raise ValueError(
            f"there is no subscription {value!r}, so nothing would be held"
            + did_you_mean(value, known.subscriptions)
        )
    return value


def first_match(silences: Sequence[Silence], alert: Alert, subscription: str, now: float) -> Silence | None:
    return next((s for s in silences if s.active(now) and s.matches(alert, subscription)), None)


def parse_silences(stored: Iterable[bytes | str]) -> list[Silence]:
    """Silences as stored (the hash's values), oldest first."""
    return sorted((Silence.model_validate_json(v) for v in stored), key=lambda s: s.created_at)


class SilenceStore:
    """Silences in Redis: the ``silences`` hash (id -> JSON) and the ``silenced`` hash (id -> how
    many alerts each held back) of the notifier's state (:mod:`services.notify.keys`)."""

    def __init__(self, redis: aredis.Redis, namespace: str) -> None:
        self.redis = redis
        keys = NotifyKeys(namespace)
        self.key = keys.silences
        self.counts = keys.silenced

    async def add(
        self, matchers: dict[str, str], seconds: float, by: str, reason: str, now: float
    ) -> Silence:
        silence = Silence(
            id=f"s-{uuid.uuid4().hex[:10]}",
            matchers=matchers,
            created_by=by,
            reason=reason,
            created_at=now,
            expires_at=now + seconds,
        )
        await self.redis.hset(self.key, silence.id, silence.model_dump_json())
        return silence

    async def all(self) -> list[Silence]:
        raw = await self.redis.hgetall(self.key)
        return parse_silences(raw.values())

    async def active(self, now: float) -> list[Silence]:
        return [s for s in await self.all() if s.active(now)]

    async def expire(self, silence_id: str, now: float) -> Silence | None:
        raw = await self.redis.hget(self.key, silence_id)
        if raw is None:
            return None
        silence = Silence.model_validate_json(raw)
        ended = silence.model_copy(update={"expires_at": min(silence.expires_at, now)})
        await self.redis.hset(self.key, silence_id, ended.model_dump_json())
        return ended

    async def counted(self) -> dict[str, int]:
        raw: dict[Any, Any] = await self.redis.hgetall(self.counts)
        return {as_text(k): int(v) for k, v in raw.items()}

    async def purge(self, now: float, keep: float) -> int:
        """Forget silences that ended more than ``keep`` seconds ago."""
        old = [s.id for s in await self.all() if s.expires_at + keep < now]
        if old:
            await self.redis.hdel(self.key, *old)
            await self.redis.hdel(self.counts, *old)
        return len(old)


def describe(silence: Silence, count: int, now: float) -> dict[str, str]:
    def when(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")

    return {
        "id": silence.id,
        "state": "active" if silence.active(now) else "expired",
        "matchers": json.dumps(silence.matchers, ensure_ascii=False),
        "by": silence.created_by,
        "reason": silence.reason,
        "until": when(silence.expires_at),
        "silenced": str(count),
    }
