"""The notifier's decisions, as pure functions: no I/O, no clock (``now`` comes in), no randomness
unless it is passed in.

Routing (which subscriptions want an alert), silencing, the re-alert window, which message an
alert joins (its bucket) and when that message is due, and how long to wait before retrying.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas.alert import Alert
from services.notify.silences import Silence, first_match
from services.notify.subscriptions import Subscription
from services.textmatch import normalise


def group_values(alert: Alert, name: str) -> list[str]:
    """The values of one grouping field of an alert (several for categories and HS chapters)."""
    if name == "category":
        return sorted({c for item in alert.matched_items for c in item.categories})
    if name == "hs_chapter":
        return sorted({i.hs_code.replace(".", "")[:2] for i in alert.matched_items if i.hs_code})
    value = getattr(alert, name)
    text = "" if value is None else str(getattr(value, "value", value))
    return [normalise(text).strip() if name in ("crossing", "importer") else text]


def bucket_for(sub: Subscription, alert: Alert) -> str:
    """Alerts of one subscription that share a bucket are sent as one message."""
    if sub.mode == "digest":
        return "digest"
    if not sub.group_by:
        return f"g:{alert.group_key}"
    return "f:" + "|".join(f"{n}={','.join(group_values(alert, n))}" for n in sub.group_by)


def due_at(sub: Subscription, now: float, default_wait: float) -> float:
    """When a message opened now is sent: after the group wait, or at the next digest tick."""
    if sub.mode == "digest":
        assert sub.digest_interval is not None
        interval = sub.digest_interval
        return (math.floor(now / interval) + 1) * interval
    return now + (sub.group_wait if sub.group_wait is not None else default_wait)


def realert_window(sub: Subscription, alert: Alert) -> int:
    """Seconds within which the same case (dedup_key) is not sent again; 0: no window.

    The subscription's ``realert`` overrides the rule's. Whole seconds, at least 1 when set.
    """
    window = sub.realert if sub.realert is not None else alert.realert
    return 0 if window <= 0 else max(1, math.ceil(window))


_RNG = random.Random()


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1 = after the first failure): exponential, capped,
    with equal jitter (between half and all of the exponential delay), so that many failed
    messages do not all come back at the same moment."""
    exp = float(min(cap, base * 2.0 ** max(0, attempt - 1)))
    r: float = (rng or _RNG).random()
    return exp / 2 + exp / 2 * r


@dataclass
class Route:
    """What happens to one alert for one subscription."""

    subscription: Subscription
    silence: str | None
    window: int
    bucket: str
    channels: list[str] = field(default_factory=list)


def route(
    alert: Alert,
    subscriptions: Sequence[Subscription],
    channel_tags: Sequence[tuple[str, frozenset[str]]],
    silences: Sequence[Silence],
    now: float,
) -> list[Route]:
    """Every subscription that wants the alert, with its channels, silence and window."""
    routes = []
    for sub in subscriptions:
        if not sub.wants(alert):
            continue
        wanted = set(sub.channels)
        channels = [cid for cid, tags in channel_tags if tags & wanted]
        if not channels:
            continue
        silence = first_match(silences, alert, sub.name, now)
        routes.append(
            Route(
                subscription=sub,
                silence=silence.id if silence else None,
                window=realert_window(sub, alert),
                bucket=bucket_for(sub, alert),
                channels=channels,
            )
        )
    return routes
