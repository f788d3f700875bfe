"""Dead letters: what a stage gave up on, why, and putting it back once the cause is fixed.

Each stage's dead-letter stream holds the original entry fields as they were, plus ``dead.*``
fields (reason, deliveries, stage, the input stream and entry id, when). Replaying an entry puts
the original fields back on the stage's input stream and removes it from the dead-letter
stream in one transaction, so a crash cannot leave it in both or neither. A replayed report
yields the same alert ids. A replayed alert is sent again to the channels that gave up on it,
and not to a channel that had it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio as aredis

from schemas.streams import StreamNames

DEAD_PREFIX = b"dead."


class DeadStage(StrEnum):
    ingest = "ingest"
    rules = "rules"
    notify = "notify"


class CannotReplay(ValueError):
    """Replay is not possible for this stage's dead letters; the message says why."""


def dead_stream(names: StreamNames, stage: DeadStage) -> str:
    return {
        DeadStage.ingest: names.reports_rejected,
        DeadStage.rules: names.reports_dead,
        DeadStage.notify: names.alerts_dead,
    }[stage]


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


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class DeadEntry:
    id: str
    fields: dict[bytes, bytes]

    @property
    def original(self) -> dict[bytes, bytes]:
        """The fields as the stage received them, without the ``dead.*`` annotations."""
        return {k: v for k, v in self.fields.items() if not k.startswith(DEAD_PREFIX)}

    def meta(self, name: str) -> str:
        # Ingest's rejected entries carry reason and at without the dead. prefix.
        raw = self.fields.get(DEAD_PREFIX + name.encode(), self.fields.get(name.encode(), b""))
        return _text(raw)

    def summary(self, limit: int = 300) -> dict[str, Any]:
        reason = self.meta("reason")
        return {
            "id": self.id,
            "at": self.meta("at"),
            "deliveries": self.meta("deliveries"),
            "entry_id": self.meta("entry_id"),
            "reason": reason if len(reason) <= limit else reason[:limit] + "…",
        }

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "fields": {_text(k): _text(v) for k, v in self.fields.items()}}


def _entries(reply: Sequence[Any]) -> list[DeadEntry]:
    return [DeadEntry(_text(entry_id), dict(fields)) for entry_id, fields in reply]


async def list_entries(redis: aredis.Redis, stream: str, limit: int, after: str = "-") -> list[DeadEntry]:
    return _entries(await redis.xrange(stream, min=after, max="+", count=limit) or [])


async def list_all(redis: aredis.Redis, names: StreamNames, stage: DeadStage, limit: int) -> list[DeadEntry]:
    """The oldest ``limit`` dead letters over every partition of the stage."""
    found = [e for stream, _ in dead_streams(names, stage) for e in await list_entries(redis, stream, limit)]
    return sorted(found, key=lambda e: tuple(int(x) for x in e.id.split("-")))[:limit]


async def find(redis: aredis.Redis, names: StreamNames, stage: DeadStage, entry_id: str) -> DeadEntry | None:
    """A dead letter by id, in whichever partition holds it."""
    for stream, _ in dead_streams(names, stage):
        if (entry := await get(redis, stream, entry_id)) is not None:
            return entry
    return None


async def get(redis: aredis.Redis, stream: str, entry_id: str) -> DeadEntry | None:
    found = _entries(await redis.xrange(stream, min=entry_id, max=entry_id, count=1) or [])
    return found[0] if found else None


async def replay(
    redis: aredis.Redis, names: StreamNames, stage: DeadStage, ids: Sequence[str] | None
) -> list[tuple[str, str]]:
    """Replay the given dead letters (None: all of them); returns (dead id, new input id) pairs.

    Each goes back to the input partition of the same number as its dead-letter partition.
    """
    input_stream(names, stage)  # refuses ingest
    chosen: list[tuple[str, str, DeadEntry]] = []
    wanted = None if ids is None else list(dict.fromkeys(ids))
    for source, target in dead_streams(names, stage):
        assert target is not None
        if wanted is None:
            chosen += [(source, target, e) for e in await list_entries(redis, source, limit=1_000_000)]
            continue
        for entry_id in wanted:
            if (entry := await get(redis, source, entry_id)) is not None:
                chosen.append((source, target, entry))
    if wanted is not None:
        missing = set(wanted) - {e.id for _, _, e in chosen}
        if missing:
            raise KeyError(f"no entry {sorted(missing)[0]} in {dead_stream(names, stage)}")
    done = []
    for source, target, entry in chosen:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xadd(target, entry.original)  # type: ignore[arg-type]
            pipe.xdel(source, entry.id)
            new_id, _ = await pipe.execute()
        done.append((entry.id, _text(new_id)))
    return done


async def purge(redis: aredis.Redis, names: StreamNames, stage: DeadStage, ids: Sequence[str] | None) -> int:
    """Delete the given dead letters (None: the whole stream); returns how many were deleted."""
    count = 0
    for stream, _ in dead_streams(names, stage):
        if ids is None:
            count += int(await redis.xlen(stream))
            await redis.delete(stream)
        elif ids:
            count += int(await redis.xdel(stream, *ids))
    return count
