"""A snapshot of the pipeline as the server sees it, for ``tradewatch status`` and the watchdog.

Everything here is read from the server in a handful of commands (XINFO, XPENDING, SCAN of the
heartbeat keys), so it shows every worker on every machine, not only this process. It also shows
the sanctions lists in force and their age, each one older than ``sanctions_max_age`` flagged.

A group is *stalled* when it has work waiting (lag or pending entries) and either nobody has
polled it for ``stall_after`` (every reader is dead or stuck), or a pending entry has sat
untouched past ``stall_after + reclaim_idle`` (nobody reclaims what a dead consumer left).
A busy but slow pipeline is not stalled: its readers poll and its reclaimers claim.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import ResponseError

from schemas.streams import StreamNames
from services.sanctions.lists import list_age, too_old
from services.sanctions.store import SanctionsStore
from services.settings import Settings
from services.wire import as_text

DEAD_STREAMS = {"rules": "reports_dead", "notify": "alerts_dead", "ingest": "reports_rejected"}
"""Each stage's dead-letter stream (an attribute of StreamNames); ingest's holds rejected input."""


def id_time(entry_id: str) -> float:
    """Unix time of a stream entry id (its milliseconds part)."""
    return int(entry_id.split("-", 1)[0]) / 1000


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts is not None else None


@dataclass
class ConsumerInfo:
    name: str
    pending: int
    idle_s: float


@dataclass
class GroupInfo:
    stream: str
    group: str
    lag: int | None
    pending: int
    oldest_pending_age_s: float | None
    consumers: list[ConsumerInfo] = field(default_factory=list)
    stalled: bool = False
    stall_reason: str = ""


@dataclass
class StreamInfo:
    name: str
    length: int
    last_entry_at: str | None


@dataclass
class WorkerInfo:
    consumer: str
    stages: list[str]
    host: str
    pid: int
    heartbeat_age_s: float
    last_progress_age_s: float | None


@dataclass
class SanctionsListInfo:
    list: str
    version: str
    entries: int
    since: str
    """Where its age counts from: "generated 2020-03-20" (the list's own date) or "loaded ..."."""
    age_days: int
    too_old: bool
    warning: str | None


@dataclass
class Snapshot:
    namespace: str
    at: str
    streams: list[StreamInfo]
    groups: list[GroupInfo]
    dead_letters: dict[str, int]
    workers: list[WorkerInfo]
    ruleset_version: str | None
    last_alert_at: str | None
    last_delivery_at: str | None
    sanctions: list[SanctionsListInfo] = field(default_factory=list)
    unrecognised_items: int = 0
    """Report items the catalog could not classify, counted by the rules stage since the start."""

    @property
    def stalled(self) -> list[GroupInfo]:
        return [g for g in self.groups if g.stalled]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _stream(redis: aredis.Redis, name: str) -> StreamInfo:
    length = int(await redis.xlen(name))
    last = await redis.xrevrange(name, "+", "-", count=1)
    at = iso(id_time(as_text(last[0][0]))) if last else None
    return StreamInfo(name, length, at)


async def _groups(redis: aredis.Redis, stream: str, settings: Settings, now: float) -> list[GroupInfo]:
    try:
        raw_groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return []  # no such stream yet
    found = []
    for raw in raw_groups:
        name = as_text(raw["name"])
        lag = raw.get("lag")
        pending = int(raw["pending"])
        oldest_age = None
        if pending:
            first = await redis.xpending_range(stream, name, min="-", max="+", count=1)
            if first:
                oldest_age = round(now - id_time(as_text(first[0]["message_id"])), 3)
        consumers = [
            ConsumerInfo(as_text(c["name"]), int(c["pending"]), round(int(c["idle"]) / 1000, 3))
            for c in await redis.xinfo_consumers(stream, name)
        ]
        info = GroupInfo(stream, name, None if lag is None else int(lag), pending, oldest_age, consumers)
        if lag is None:  # undetermined after deletions: compare the ids instead
            last = (await redis.xinfo_stream(stream))["last-generated-id"]
            behind = as_text(last) != as_text(raw["last-delivered-id"])
        else:
            behind = int(lag) > 0
        await _judge(redis, info, settings, behind)
        found.append(info)
    return found


async def _judge(redis: aredis.Redis, info: GroupInfo, settings: Settings, behind: bool) -> None:
    if not (behind or info.pending):
        return
    polled = [c for c in info.consumers if c.idle_s < settings.stall_after]
    if not polled:
        info.stalled = True
        info.stall_reason = f"work waiting and no consumer has read for {settings.stall_after:g}s"
        return
    if info.pending:
        untouched_ms = int((settings.stall_after + settings.reclaim_idle) * 1000)
        stuck = await redis.xpending_range(
            info.stream, info.group, min="-", max="+", count=1, idle=untouched_ms
        )
        if stuck:
            info.stalled = True
            info.stall_reason = (
                f"entry {as_text(stuck[0]['message_id'])} pending for over {settings.stall_after + settings.reclaim_idle:g}s "
                "and nobody reclaims it"
            )


async def _workers(redis: aredis.Redis, names: StreamNames, now: float) -> list[WorkerInfo]:
    members = [as_text(m) for m in await redis.zrange(names.key("workers"), 0, -1)]
    if not members:
        return []
    async with redis.pipeline(transaction=False) as pipe:  # one key per worker: any slot
        for m in members:
            pipe.get(names.key("heartbeat", m))
        beats = await pipe.execute()
    found = []
    for raw in beats:
        if raw is None:
            continue  # its key expired: the worker is gone (or stuck, and no longer beating)
        try:
            beat = json.loads(raw)
            progress = beat.get("progress_at")
            found.append(
                WorkerInfo(
                    consumer=str(beat["consumer"]),
                    stages=[str(s) for s in beat["stages"]],
                    host=str(beat.get("host", "")),
                    pid=int(beat.get("pid", 0)),
                    heartbeat_age_s=round(now - float(beat["at"]), 3),
                    last_progress_age_s=round(now - float(progress), 3) if progress else None,
                )
            )
        except (ValueError, KeyError, TypeError):
            continue  # not a heartbeat this version wrote: not ours to show
    return sorted(found, key=lambda w: (w.stages, w.consumer))


async def _sanctions(redis: aredis.Redis, settings: Settings) -> list[SanctionsListInfo]:
    found = []
    for meta in await SanctionsStore(redis, settings).lists():
        age = list_age(meta)
        warning = too_old(meta, settings.sanctions_max_age)
        found.append(
            SanctionsListInfo(
                list=meta.list,
                version=meta.version,
                entries=meta.entries,
                since=age.since,
                age_days=age.days,
                too_old=warning is not None,
                warning=warning,
            )
        )
    return found


async def snapshot(
    redis: aredis.Redis, settings: Settings, *, with_workers: bool = True, with_sanctions: bool = True
) -> Snapshot:
    names = settings.streams
    now = time.time()
    # Every partition of each stream (one each with the default single partition).
    parts = {
        "reports": names.all_reports,
        "alerts": names.all_alerts,
        "reports_rejected": [names.reports_rejected],
        "reports_dead": names.all_reports_dead,
        "alerts_dead": names.all_alerts_dead,
        "deliveries": [names.deliveries],
    }
    streams = [await _stream(redis, s) for group in parts.values() for s in group]
    by_name = {s.name: s for s in streams}

    def total(kind: str) -> int:
        return sum(by_name[s].length for s in parts[kind])

    def last_at(kind: str) -> str | None:
        return max((at for s in parts[kind] if (at := by_name[s].last_entry_at)), default=None)

    inputs = [*names.all_reports, *names.all_alerts]
    groups = [g for s in inputs for g in await _groups(redis, s, settings, now)]
    version = await redis.get(names.key("ruleset", "version"))
    unrecognised = await redis.get(names.key("rules", "unrecognised-items"))  # the rules stage's count
    return Snapshot(
        namespace=settings.namespace,
        at=iso(now) or "",
        streams=streams,
        groups=groups,
        dead_letters={stage: total(kind) for stage, kind in DEAD_STREAMS.items()},
        workers=await _workers(redis, names, now) if with_workers else [],
        ruleset_version=as_text(version) if version is not None else None,
        last_alert_at=last_at("alerts"),
        last_delivery_at=last_at("deliveries"),
        sanctions=await _sanctions(redis, settings) if with_sanctions else [],
        unrecognised_items=int(unrecognised or 0),
    )
