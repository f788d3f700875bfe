"""Screening exceptions: reviewed "not this party" decisions that screening skips, visibly.

The store of record keeps each exception (name, listed entry, who, why, until, revoked or not)
and publishes those in force to ``<namespace>:screening:exceptions`` (a hash, id -> JSON of
:class:`schemas.sanctions.ScreeningException`), replacing the whole hash at once. The rules
stage reads the hash at most once a second (:class:`ExceptionsCache`) and hands the exceptions in
force to screening with the lists' index; a match of the same name (compared as screening
compares names: legal forms, case and spelling folded) to the same listed entry is skipped, and
the alerts of that report say so: ``screening skipped importer "X" as KPe.016: exception 3 by
alice until 2026-09-30``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aredis
from pydantic import ValidationError

from schemas.sanctions import ScreeningException
from schemas.streams import StreamNames
from services.logging import get_logger
from services.sanctions.normalise import compact, core, key_tokens
from services.wire import as_text


def key(names: StreamNames) -> str:
    return names.key("screening", "exceptions")


def name_key(name: str) -> str:
    """A name as screening compares it: ``Korea Ryonha Machinery J/V Co., Ltd.`` and ``KOREA
    RYONHA MACHINERY JV`` have the same key."""
    return compact(core(key_tokens(name)))


@dataclass(frozen=True, slots=True)
class ActiveException:
    """An exception in force, ready to compare against a match."""

    exception: ScreeningException
    name_key: str

    def covers(self, query: str, reference: str) -> bool:
        return reference == self.exception.entry and name_key(query) == self.name_key

    def says(self, role_and_name: str) -> str:
        e = self.exception
        return (
            f"screening skipped {role_and_name} as {e.entry}: exception {e.id} by {e.by} "
            f"until {e.until.astimezone(UTC).date().isoformat()} ({e.reason})"
        )


def in_force(exceptions: Sequence[ScreeningException], now: datetime) -> tuple[ActiveException, ...]:
    return tuple(ActiveException(e, name_key(e.name)) for e in exceptions if e.until > now)


async def publish(redis: aredis.Redis, names: StreamNames, exceptions: Sequence[ScreeningException]) -> None:
    """Replace the published exceptions with these, in one transaction."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key(names))
        if exceptions:
            pipe.hset(key(names), mapping={str(e.id): e.model_dump_json() for e in exceptions})
        await pipe.execute()


async def read(redis: aredis.Redis, names: StreamNames) -> list[ScreeningException]:
    """The published exceptions (expired ones too: :func:`in_force` filters them)."""
    raw = await redis.hgetall(key(names))
    found = []
    for ident, doc in raw.items():
        try:
            found.append(ScreeningException.model_validate_json(doc))
        except ValidationError as error:
            get_logger(component="sanctions").error(
                "screening exception unreadable", id=as_text(ident), error=str(error)[:300]
            )
    return sorted(found, key=lambda e: e.id)


class ExceptionsCache:
    """The exceptions in force, read from the server at most every ``recheck`` seconds."""

    def __init__(self, redis: aredis.Redis, names: StreamNames, recheck: float = 1.0) -> None:
        self.redis = redis
        self.names = names
        self.recheck = recheck
        self._read: list[ScreeningException] = []
        self._next = 0.0
        self.log = get_logger(component="sanctions")

    async def current(self, now: datetime) -> tuple[ActiveException, ...]:
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.recheck
            found = await read(self.redis, self.names)
            if [e.id for e in found] != [e.id for e in self._read]:
                self.log.info(
                    "screening exceptions loaded",
                    exceptions=[f"{e.id}: {e.name} is not {e.entry} (until {e.until.date()})" for e in found],
                )
            self._read = found
        return in_force(self._read, now)
