"""What passes between the outbox and its scripts (``services/notify/lua/``), typed in one place.

Each script takes its arguments as one JSON document in ``ARGV[1]`` (``AcceptArgv``, ``ClaimArgv``,
``FinishArgv``: the ``TypedDict`` is the document, field for field) and the accept script takes
the alerts' JSON as arguments of their own. For each script there is one function that builds its
arguments (``accept_args``, ``claim_args``, ``finish_args``) and one that reads its reply
(``read_accept``, ``read_claim``, ``read_finish``); nothing else builds or reads these documents.

Two traps of Redis's ``cjson``, handled here:

- ``null`` decodes to ``cjson.null``, which is *true* in Lua: an optional field that has no value
  is left out of the document, never sent as ``null`` (``NotRequired`` below).
- An empty Lua table encodes as ``{}``, not ``[]``: an empty list in a reply (no units, a message
  without alert ids) comes back as an empty object and is read as an empty list.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from services.wire import as_text


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def new_delivery_id() -> str:
    return f"d-{uuid.uuid4().hex[:16]}"


def _list(value: Any) -> list[Any]:
    """A JSON array from a script: ``{}`` is how cjson encodes an empty one."""
    if value == {}:
        return []
    if not isinstance(value, list):
        raise ValueError(f"a script replied {value!r} where a list was expected")
    return value


# --- accept


@dataclass(frozen=True)
class Queued:
    """One alert for one subscription, to be accepted: its decision and its channels."""

    subscription: str
    silence: str | None
    window: int
    dedup_key: str
    bucket: str
    due: float
    channels: list[str]


@dataclass(frozen=True)
class AcceptItem:
    """One alert to accept: its id, its JSON as it came (already validated), its routes."""

    alert_id: str
    raw: bytes
    routes: Sequence[Queued]


class ChannelArg(TypedDict):
    channel: str
    new_delivery: str  # the id a new message takes if none is open for the bucket


class RouteArg(TypedDict):
    subscription: str
    silence: NotRequired[str]  # absent: not silenced
    window: int
    dedup_key: str
    bucket: str
    due: float
    channels: list[ChannelArg]


class AcceptItemArg(TypedDict):
    alert_id: str
    argv: int  # the index in ARGV of the alert's JSON
    routes: list[RouteArg]


class AcceptArgv(TypedDict):
    keys: dict[str, str]
    now: float
    now_iso: str
    retention: int
    dedup_retention: int
    stream: str
    group: str
    ack: list[str]
    items: list[AcceptItemArg]


class AcceptCounts(TypedDict):
    queued: int
    silenced: int
    deduplicated: int
    repeated: int
    routed_nowhere: int


def _route_arg(q: Queued, new_id: Callable[[], str]) -> RouteArg:
    arg = RouteArg(
        subscription=q.subscription,
        window=q.window,
        dedup_key=q.dedup_key,
        bucket=q.bucket,
        due=q.due,
        channels=[ChannelArg(channel=c, new_delivery=new_id()) for c in q.channels],
    )
    if q.silence:
        arg["silence"] = q.silence
    return arg


def accept_args(
    keys: Mapping[str, str],
    items: Sequence[AcceptItem],
    *,
    ack: Sequence[str],
    stream: str,
    group: str,
    now: float,
    retention: int,
    dedup_retention: int,
    new_id: Callable[[], str] = new_delivery_id,
) -> list[str | bytes]:
    """ARGV of accept.lua: the document, then each alert's JSON as it came (nothing is encoded
    again here, or escaped and decoded in the script)."""
    argv = AcceptArgv(
        keys=dict(keys),
        now=now,
        now_iso=iso(now),
        retention=retention,
        dedup_retention=dedup_retention,
        stream=stream,
        group=group,
        ack=list(ack),
        items=[
            AcceptItemArg(
                alert_id=item.alert_id,
                argv=n,  # ARGV[1] is the document
                routes=[_route_arg(q, new_id) for q in item.routes],
            )
            for n, item in enumerate(items, start=2)
        ],
    )
    return [json.dumps(argv, ensure_ascii=False), *(item.raw for item in items)]


def read_accept(reply: Any) -> AcceptCounts:
    counts = json.loads(reply)
    return AcceptCounts(
        queued=int(counts["queued"]),
        silenced=int(counts["silenced"]),
        deduplicated=int(counts["deduplicated"]),
        repeated=int(counts["repeated"]),
        routed_nowhere=int(counts["routed_nowhere"]),
    )


# --- claim


class ClaimArgv(TypedDict):
    keys: dict[str, str]
    now: float
    lease: float
    max_units: int
    limits: dict[str, int]  # subscription -> messages per send (absent: 1)
    flying: list[str]
    scan: int


@dataclass(frozen=True)
class ClaimedMessage:
    id: str
    attempts: int
    alert_ids: list[str]
    """In arrival order, each once (a replayed alert may be listed twice)."""


@dataclass(frozen=True)
class ClaimedUnit:
    subscription: str
    messages: list[ClaimedMessage]


@dataclass(frozen=True)
class ClaimReply:
    units: list[ClaimedUnit]
    silences: list[bytes | str]
    """Every silence as stored (the hash's values)."""
    next_due: float | None
    alerts: dict[str, bytes | str]
    """Alert id -> its JSON, for each claimed alert still stored."""


def claim_args(
    keys: Mapping[str, str],
    *,
    now: float,
    lease: float,
    max_units: int,
    limits: Mapping[str, int],
    flying: Sequence[str],
    scan: int,
) -> list[str]:
    argv = ClaimArgv(
        keys=dict(keys),
        now=now,
        lease=lease,
        max_units=max_units,
        limits=dict(limits),
        flying=list(flying),
        scan=scan,
    )
    return [json.dumps(argv, ensure_ascii=False)]


def read_claim(reply: Sequence[Any]) -> ClaimReply:
    plan, silences, upcoming, *bodies = reply
    units = [
        ClaimedUnit(
            subscription=unit["subscription"],
            messages=[
                ClaimedMessage(
                    id=m["id"],
                    attempts=int(m["attempts"]),
                    alert_ids=list(dict.fromkeys(_list(m["alerts"]))),
                )
                for m in _list(unit["messages"])
            ],
        )
        for unit in _list(json.loads(plan))
    ]
    return ClaimReply(
        units=units,
        silences=list(silences[1::2]),
        next_due=float(upcoming) if upcoming else None,
        alerts={as_text(a): body for a, body in zip(bodies[::2], bodies[1::2], strict=True)},
    )


# --- finish


@dataclass(frozen=True)
class FinishAlert:
    alert_id: str
    rule_id: str
    report_id: str
    dead_letter: Mapping[str, str] | None = None
    """The fields of its dead letter, when the script writes it (the record's ``dead_stream``)."""


@dataclass(frozen=True)
class FinishRecord:
    id: str
    channel: str
    subscription: str
    attempt: int
    outcome: str
    """sent | failed | dead | silenced"""
    error: str | None
    """The reason; for ``silenced`` the silence's id."""
    alerts: Sequence[FinishAlert]
    retry_at: float | None = None
    dead_stream: str | None = None
    instead: Sequence[str] | None = None


class FinishAlertArg(TypedDict):
    alert_id: str
    rule_id: str
    report_id: str
    dead_letter: NotRequired[list[str]]  # field, value, field, value, ...


class FinishRecordArg(TypedDict):
    id: str
    channel: str
    subscription: str
    attempt: int
    outcome: str
    error: str  # '' for none
    alerts: list[FinishAlertArg]
    retry_at: NotRequired[float]
    retry_iso: NotRequired[str]
    dead_stream: NotRequired[str]
    instead: NotRequired[list[str]]


class FinishArgv(TypedDict):
    keys: dict[str, str]
    retention: int
    at: str
    ms: NotRequired[float]
    records: list[FinishRecordArg]


def _alert_arg(alert: FinishAlert, with_dead_letter: bool) -> FinishAlertArg:
    arg = FinishAlertArg(alert_id=alert.alert_id, rule_id=alert.rule_id, report_id=alert.report_id)
    if with_dead_letter:
        if alert.dead_letter is None:
            raise ValueError(f"alert {alert.alert_id}: a dead_stream needs each alert's dead_letter")
        arg["dead_letter"] = [x for pair in alert.dead_letter.items() for x in pair]
    return arg


def _record_arg(r: FinishRecord) -> FinishRecordArg:
    dead_stream = r.dead_stream if r.outcome == "dead" and r.dead_stream else None
    arg = FinishRecordArg(
        id=r.id,
        channel=r.channel,
        subscription=r.subscription,
        attempt=r.attempt,
        outcome=r.outcome,
        error=r.error or "",
        alerts=[_alert_arg(a, dead_stream is not None) for a in r.alerts],
    )
    if r.outcome == "failed" and r.retry_at is not None:
        arg["retry_at"] = r.retry_at
        arg["retry_iso"] = iso(r.retry_at)
    if dead_stream is not None:
        arg["dead_stream"] = dead_stream
    if r.outcome == "dead" and r.instead:
        arg["instead"] = list(r.instead)
    return arg


def finish_args(
    keys: Mapping[str, str],
    records: Sequence[FinishRecord],
    *,
    at: str,
    retention: int,
    ms: float | None = None,
) -> list[str]:
    argv = FinishArgv(keys=dict(keys), retention=retention, at=at, records=[_record_arg(r) for r in records])
    if ms is not None:
        argv["ms"] = ms
    return [json.dumps(argv, ensure_ascii=False)]


def read_finish(reply: Any) -> int:
    return int(reply)
