"""Dead letters: entries a stage gives up on, moved to its dead stream with the reason.

Every stage dead-letters through here, so a dead letter has the same fields, the same counter
and the same log line wherever it comes from:

- ``bury`` moves entries and acks them in one transaction (a malformed alert, a poison entry
  past the delivery limit);
- a stage that commits its batch in one script of its own (rules, which acks only what it still
  owns) adds ``fields(...)`` to that commit and calls ``recorded`` for what the commit stored.

The last error of each entry that failed in a group is kept (``note_errors``), so the dead
letter of an entry that failed again and again says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aredis

from services import metrics
from services.logging import get_logger
from services.redact import redact
from services.runtime.contract import Consumes
from services.wire import Entry, as_text

ERRORS_TTL_S = 7 * 86_400


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entry: Entry
    reason: str


def fields(stage: str, consumes: Consumes, letter: DeadLetter) -> dict[bytes, bytes]:
    """The original fields kept as they were, plus why, where from and how often it was tried."""
    entry = letter.entry
    out = dict(entry.fields)
    out[b"dead.stage"] = stage.encode()
    out[b"dead.stream"] = consumes.stream.encode()
    out[b"dead.entry_id"] = entry.id.encode()
    out[b"dead.reason"] = letter.reason.encode("utf-8", "replace")
    out[b"dead.deliveries"] = str(entry.deliveries).encode()
    out[b"dead.at"] = datetime.now(UTC).isoformat().encode()
    return out


def recorded(stage: str, consumes: Consumes, letters: Sequence[DeadLetter]) -> None:
    """Count and log dead letters once they are stored."""
    if not letters:
        return
    metrics.DEAD_LETTERS.labels(stage).inc(len(letters))
    log = get_logger(stage=stage)
    for letter in letters:
        log.warning(
            "dead-lettered",
            entry_id=letter.entry.id,
            reason=letter.reason,
            dead_stream=consumes.dead_stream,
        )


async def bury(redis: aredis.Redis, stage: str, consumes: Consumes, letters: Sequence[DeadLetter]) -> None:
    """Move entries to the stage's dead stream and ack them, in one transaction."""
    if not letters:
        return
    async with redis.pipeline(transaction=True) as pipe:
        for letter in letters:
            pipe.xadd(consumes.dead_stream, fields(stage, consumes, letter))  # type: ignore[arg-type]
            pipe.xack(consumes.stream, consumes.group, letter.entry.id)
        await pipe.execute()
    recorded(stage, consumes, letters)


def errors_key(consumes: Consumes) -> str:
    """A hash of the last error of each entry that failed in this group, for its dead letter."""
    return f"{consumes.stream}:errors:{consumes.group}"


async def note_errors(redis: aredis.Redis, consumes: Consumes, errors: dict[str, str]) -> None:
    """Remember why these entries failed (secrets masked); the hash lives a week past the last."""
    if not errors:
        return
    key = errors_key(consumes)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping={i: redact(e)[:2000] for i, e in errors.items()})
        pipe.expire(key, ERRORS_TTL_S)
        await pipe.execute()


async def bury_poison(
    redis: aredis.Redis, stage: str, consumes: Consumes, entries: Sequence[Entry], limit: int
) -> list[Entry]:
    """Dead-letter the entries delivered more than ``limit`` times, with their last error; return
    the others."""
    poison = [e for e in entries if e.deliveries > limit]
    if not poison:
        return list(entries)
    key = errors_key(consumes)
    errors = await redis.hmget(key, [e.id for e in poison])
    letters = []
    for entry, error in zip(poison, errors, strict=True):
        reason = f"delivered {entry.deliveries} times (limit {limit}) without being handled"
        if error:
            reason += f"; last error: {as_text(error)}"
        letters.append(DeadLetter(entry, reason))
    await bury(redis, stage, consumes, letters)
    await redis.hdel(key, *[e.id for e in poison])
    return [e for e in entries if e.deliveries <= limit]
