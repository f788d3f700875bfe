"""Dead letters: what a stage gave up on, why, and putting it back once the cause is fixed.

Each stage's dead-letter stream holds the original entry fields as they were, plus ``dead.*``
fields (reason, deliveries, stage, the input stream and entry id, when). Replaying an entry puts
the original fields back on the stage's input stream and removes it from the dead-letter
stream in one transaction, so a crash cannot leave it in both or neither. A replayed report
yields the same alert ids. A replayed alert is sent again to the channels that gave up on it,
and not to a channel that had it.

With several partitions a stage has one dead-letter stream per partition, and entry ids are only
unique within a stream: two shards that dead-letter in the same millisecond give their entries
the same id. So there a dead letter is named ``<entry id>@p<partition>`` (``dlq list`` prints it
so); a bare entry id is still taken where it names one dead letter, and refused where it names
more than one, rather than acting on all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio as aredis

from schemas.streams import StreamNames
from services.wire import as_text

DEAD_PREFIX = b"dead."


class DeadStage(StrEnum):
    ingest = "ingest"
    rules = "rules"
    notify = "notify"


class CannotReplay(ValueError):
    """Replay is not possible for this stage's dead letters; the message says why."""


def input_stream(names: StreamNames, stage: DeadStage) -> str:
    if stage is DeadStage.ingest:
        raise CannotReplay("rejected input never became a report: fix the source file and ingest it again")
    return names.reports if stage is DeadStage.rules else names.alerts


def dead_streams(names: StreamNames, stage: DeadStage) -> list[tuple[str, str | None]]:
    """Every dead-letter stream of the stage (one per partition) with the input stream it replays to."""
    if stage is DeadStage.ingest:
        return [(names.reports_rejected, None)]
    if stage is DeadStage.rules:
        return [(names.reports_dead_stream(p), names.report_stream(p)) for p in range(names.partitions)]
    return [(names.alerts_dead_stream(p), names.alert_stream(p)) for p in range(names.partitions)]


def dead_streams_label(names: StreamNames, stage: DeadStage) -> str:
    """The stage's dead-letter stream, or its range of partitions, for messages to the operator."""
    streams = [stream for stream, _ in dead_streams(names, stage)]
    return streams[0] if len(streams) == 1 else f"{streams[0]} .. {streams[-1]}"


class AmbiguousId(ValueError):
    """A bare entry id that names dead letters on several partitions; the message lists them."""


@dataclass(frozen=True)
class DeadEntry:
    id: str
    fields: dict[bytes, bytes]
    partition: int | None = None
    """Its partition, where the stage has several (then ``id`` alone may not name it)."""

    @property
    def ref(self) -> str:
        """What the commands call it: the entry id, with ``@p<partition>`` where there are several."""
        return self.id if self.partition is None else f"{self.id}@p{self.partition}"

    @property
    def original(self) -> dict[bytes, bytes]:
        """The fields as the stage received them, without the ``dead.*`` annotations."""
        return {k: v for k, v in self.fields.items() if not k.startswith(DEAD_PREFIX)}

    def meta(self, name: str) -> str:
        # Ingest's rejected entries carry reason and at without the dead. prefix.
        raw = self.fields.get(DEAD_PREFIX + name.encode(), self.fields.get(name.encode(), b""))
        return as_text(raw)

    def summary(self, limit: int = 300) -> dict[str, Any]:
        reason = self.meta("reason")
        row = {
            "id": self.ref,
            "at": self.meta("at"),
            "deliveries": self.meta("deliveries"),
            "entry_id": self.meta("entry_id"),
            "reason": reason if len(reason) <= limit else reason[:limit] + "…",
        }
        # A notify dead letter: whose message it was and the channel that gave up on it.
        for name in ("subscription", "channel"):
            if (DEAD_PREFIX + name.encode()) in self.fields:
                row[name] = self.meta(name)
        return row

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.ref, "fields": {as_text(k): as_text(v) for k, v in self.fields.items()}}


def _entries(reply: Sequence[Any], partition: int | None = None) -> list[DeadEntry]:
    return [DeadEntry(as_text(entry_id), dict(fields), partition) for entry_id, fields in reply]


def _partitions(names: StreamNames, stage: DeadStage) -> list[tuple[int | None, str, str | None]]:
    """(partition, dead-letter stream, input stream) of the stage; partition None where there is one."""
    streams = dead_streams(names, stage)
    if len(streams) == 1:
        return [(None, *streams[0])]
    return [(p, dead, target) for p, (dead, target) in enumerate(streams)]


async def list_entries(
    redis: aredis.Redis, stream: str, limit: int, after: str = "-", partition: int | None = None
) -> list[DeadEntry]:
    return _entries(await redis.xrange(stream, min=after, max="+", count=limit) or [], partition)


async def list_all(redis: aredis.Redis, names: StreamNames, stage: DeadStage, limit: int) -> list[DeadEntry]:
    """The oldest ``limit`` dead letters over every partition of the stage."""
    found = [
        e
        for p, stream, _ in _partitions(names, stage)
        for e in await list_entries(redis, stream, limit, partition=p)
    ]
    return sorted(found, key=lambda e: (tuple(int(x) for x in e.id.split("-")), e.partition or 0))[:limit]


async def _locate(
    redis: aredis.Redis, names: StreamNames, stage: DeadStage, ref: str
) -> list[tuple[str, str | None, DeadEntry]]:
    """The dead letters ``ref`` names, with their stream and input stream: ``ID@pK`` names the one
    of partition K, a bare ``ID`` each partition's entry of that id (more than one: ambiguous)."""
    entry_id, _, tag = ref.partition("@")
    found = []
    for p, stream, target in _partitions(names, stage):
        if tag and tag != f"p{p}":
            continue
        if (entry := await get(redis, stream, entry_id, p)) is not None:
            found.append((stream, target, entry))
    return found


def _one(
    ref: str, found: list[tuple[str, str | None, DeadEntry]]
) -> tuple[str, str | None, DeadEntry] | None:
    if len(found) > 1:
        refs = " and ".join(e.ref for _, _, e in found)
        raise AmbiguousId(f"{ref} is the id of dead letters on several partitions: name one of {refs}")
    return found[0] if found else None


async def find(redis: aredis.Redis, names: StreamNames, stage: DeadStage, ref: str) -> DeadEntry | None:
    """A dead letter by its id (as ``list`` prints it), in whichever partition holds it."""
    found = _one(ref, await _locate(redis, names, stage, ref))
    return found[2] if found else None


async def get(
    redis: aredis.Redis, stream: str, entry_id: str, partition: int | None = None
) -> DeadEntry | None:
    found = _entries(await redis.xrange(stream, min=entry_id, max=entry_id, count=1) or [], partition)
    return found[0] if found else None


async def replay(
    redis: aredis.Redis, names: StreamNames, stage: DeadStage, ids: Sequence[str] | None
) -> list[tuple[str, str]]:
    """Replay the given dead letters (None: all of them); returns (dead id, new input id) pairs.

    Each goes back to the input partition of the same number as its dead-letter partition.
    """
    input_stream(names, stage)  # refuses ingest
    chosen: list[tuple[str, str | None, DeadEntry]] = []
    if ids is None:
        for p, source, target in _partitions(names, stage):
            chosen += [(source, target, e) for e in await list_entries(redis, source, 1_000_000, partition=p)]
    else:
        for ref in dict.fromkeys(ids):
            found = _one(ref, await _locate(redis, names, stage, ref))
            if found is None:
                raise KeyError(f"no entry {ref} in {dead_streams_label(names, stage)}")
            chosen.append(found)
    done = []
    for source, target, entry in chosen:
        assert target is not None
        # One transaction: the dead-letter partition and its input partition share a hash tag.
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xadd(target, entry.original)  # type: ignore[arg-type]
            pipe.xdel(source, entry.id)
            new_id, _ = await pipe.execute()
        done.append((entry.ref, as_text(new_id)))
    return done


async def purge(redis: aredis.Redis, names: StreamNames, stage: DeadStage, ids: Sequence[str] | None) -> int:
    """Delete the given dead letters (None: the whole stream); returns how many were deleted."""
    if ids is None:
        count = 0
        for _, stream, _ in _partitions(names, stage):
            count += int(await redis.xlen(stream))
            await redis.delete(stream)
        return count
    # Each id is found first, so that an ambiguous one deletes nothing; an unknown one is skipped.
    chosen = [_one(ref, await _locate(redis, names, stage, ref)) for ref in dict.fromkeys(ids)]
    count = 0
    for found in chosen:
        if found is not None:
            stream, _, entry = found
            count += int(await redis.xdel(stream, entry.id))
    return count
