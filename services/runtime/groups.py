"""Consumer-group commands the runtime needs beyond what FastStream sends."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aredis
from redis.exceptions import ResponseError

from services.wire import as_text


async def ensure_group(redis: aredis.Redis, stream: str, group: str) -> bool:
    """Create the group at id 0 with MKSTREAM (so entries added before it are read); True if new."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" in str(error):
            return False
        raise
    return True


async def group_idle(redis: aredis.Redis, stream: str, group: str) -> bool:
    """No entry waiting for the group and none pending in it."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return True  # no stream: nothing waiting
    for info in groups:
        if as_text(info["name"]) != group:
            continue
        if info["pending"]:
            return False
        lag = info.get("lag")
        if lag is None:  # undetermined after deletions: compare ids instead
            stream_info = await redis.xinfo_stream(stream)
            return bool(stream_info["last-generated-id"] == info["last-delivered-id"])
        return int(lag) == 0
    return await redis.xlen(stream) == 0


@dataclass(frozen=True, slots=True)
class Claimed:
    """One XAUTOCLAIM call: where to go on from, what it took, and ids trimmed while pending."""

    next_id: str
    entries: list[tuple[str, dict[bytes, bytes]]]
    deleted: list[str]


async def autoclaim(
    redis: aredis.Redis, stream: str, group: str, consumer: str, idle_ms: int, start: str, count: int
) -> Claimed:
    """XAUTOCLAIM entries idle for ``idle_ms`` from ``start`` on (redis-py's own helper drops the
    ids of entries deleted while pending, which the reclaimer reports)."""
    command = ("XAUTOCLAIM", stream, group, consumer, idle_ms, start, "COUNT", count)
    reply = await redis.execute_command(*command)  # type: ignore[no-untyped-call]
    entries = []
    for item in reply[1]:
        if item is None or item[1] is None:
            continue
        fields = item[1]
        if isinstance(fields, list):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        entries.append((as_text(item[0]), fields))
    deleted = [as_text(d) for d in (reply[2] if len(reply) > 2 else [])]
    return Claimed(as_text(reply[0]), entries, deleted)


async def delivery_counts(
    redis: aredis.Redis, stream: str, group: str, consumer: str, first: str, last: str, count: int
) -> dict[str, int]:
    """How often each entry pending for this consumer between two ids was delivered (one XPENDING)."""
    pending = await redis.xpending_range(
        stream, group, min=first, max=last, count=count, consumername=consumer
    )
    return {as_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
