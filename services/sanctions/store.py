"""Sanctions lists in Redis: each version under its own keys, one pointer per list switched at once.

Keys (under the namespace):

- ``sanctions:current``: hash, list name -> version in force (the pointer).
- ``sanctions:list:<name>:<version>:entries``: hash, record id -> entry JSON.
- ``sanctions:list:<name>:<version>:meta``: the list's date, version, source, digest, count.
- ``sanctions:exceptions``: hash, any field (an id) -> a reviewed exception as JSON
  (:class:`schemas.sanctions.ScreeningException`), written by the store of record; read here.

A load writes the new version's keys first (with an expiry, so a load that dies half-way leaves
nothing behind for long), then in one MULTI/EXEC makes them permanent, moves the pointer and
gives the replaced version ``sanctions_keep_replaced`` to live. A reader reads the pointer, then
immutable version keys: it sees the old list or the new one, never half of either.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aredis
from pydantic import ValidationError
from redis.exceptions import WatchError

from schemas.sanctions import ScreeningException
from schemas.streams import StreamNames
from services.logging import get_logger
from services.sanctions.index import ScreeningIndex
from services.sanctions.lists import ListedEntry, ListFormat, ListMeta, ParsedList, too_old
from services.sanctions.matcher import exceptions_from
from services.settings import Settings
from services.wire import as_text

_WRITE_CHUNK = 500
_PENDING_TTL = 3_600


class ListsUnavailable(RuntimeError):
    """The lists changed under a reader too many times in a row, or a version vanished."""


@dataclass(frozen=True)
class Loaded:
    meta: ListMeta
    changed: bool
    replaced: str | None


class SanctionsStore:
    def __init__(self, redis: aredis.Redis, settings: Settings) -> None:
        self.redis = redis
        names = settings.streams
        # The pointer and the list versions change together in one MULTI: on a cluster they
        # share one hash tag (``<ns>:{sanctions}:...``); on one server the plain names.
        self.key = StreamNames(f"{names.namespace}:{{sanctions}}").key if names.is_partitioned else names.key
        self.keep_replaced = max(1, int(settings.sanctions_keep_replaced))

    @property
    def pointer(self) -> str:
        return self.key("sanctions", "current")

    def entries_key(self, name: str, version: str) -> str:
        return self.key("sanctions", "list", name, version, "entries")

    def meta_key(self, name: str, version: str) -> str:
        return self.key("sanctions", "list", name, version, "meta")

    @property
    def exceptions_key(self) -> str:
        return self.key("sanctions", "exceptions")

    async def put_exception(self, field: str, exception: ScreeningException) -> None:
        """Store one reviewed exception (as the store of record does)."""
        await self.redis.hset(self.exceptions_key, field, exception.model_dump_json(exclude_none=True))

    async def exceptions(self) -> tuple[str, list[ScreeningException], list[str]]:
        """The reviewed exceptions, a digest of them (unchanged: nothing to redo) and the problems
        of fields that are not a valid exception (left out, each named)."""
        raw = await self.redis.hgetall(self.exceptions_key)
        digest = hashlib.sha256()
        found: list[ScreeningException] = []
        problems: list[str] = []
        for field_, value in sorted((as_text(f), as_text(v)) for f, v in raw.items()):
            digest.update(f"{field_}\0{value}\0".encode())
            try:
                found.append(ScreeningException.model_validate_json(value))
            except ValidationError as error:
                problems.append(
                    f"{self.exceptions_key} field {as_text(field_)!r}: {error.errors()[0]['msg']}"
                )
        return digest.hexdigest(), found, problems

    async def save(self, name: str, fmt: ListFormat, source: str, parsed: ParsedList) -> Loaded:
        version = parsed.version
        meta = ListMeta(
            list=name,
            format=fmt,
            date=parsed.date,
            version=version,
            source=source,
            sha256=parsed.sha256,
            entries=len(parsed.entries),
            loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        current = await self.redis.hget(self.pointer, name)
        if current is not None and as_text(current) == version:
            stored = await self.redis.get(self.meta_key(name, version))
            if stored is not None:
                return Loaded(ListMeta.model_validate_json(stored), changed=False, replaced=None)
        entries_key, meta_key = self.entries_key(name, version), self.meta_key(name, version)
        await self.redis.delete(entries_key)
        for start in range(0, len(parsed.entries), _WRITE_CHUNK):
            chunk = parsed.entries[start : start + _WRITE_CHUNK]
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(entries_key, mapping={e.id: e.model_dump_json() for e in chunk})
                pipe.expire(entries_key, _PENDING_TTL)
                await pipe.execute()
        await self.redis.set(meta_key, meta.model_dump_json(), ex=_PENDING_TTL)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self.pointer)
                    old = await pipe.hget(self.pointer, name)
                    replaced = as_text(old) if old is not None else None
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.persist(entries_key)
                    pipe.persist(meta_key)
                    pipe.hset(self.pointer, name, version)
                    if replaced is not None and replaced != version:
                        pipe.expire(self.entries_key(name, replaced), self.keep_replaced)
                        pipe.expire(self.meta_key(name, replaced), self.keep_replaced)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        return Loaded(meta, changed=True, replaced=replaced)

    async def pointers(self) -> dict[str, str]:
        raw = await self.redis.hgetall(self.pointer)
        return {as_text(k): as_text(v) for k, v in raw.items()}

    async def lists(self) -> list[ListMeta]:
        pointers = await self.pointers()
        metas = []
        for name, version in sorted(pointers.items()):
            stored = await self.redis.get(self.meta_key(name, version))
            if stored is not None:
                metas.append(ListMeta.model_validate_json(stored))
        return metas

    async def read(self) -> tuple[dict[str, str], list[ListedEntry]]:
        """The lists in force and all their entries, consistent with the pointers read."""
        for _ in range(5):
            pointers = await self.pointers()
            async with self.redis.pipeline(transaction=False) as pipe:
                for name, version in sorted(pointers.items()):
                    pipe.hvals(self.entries_key(name, version))
                results = await pipe.execute()
            if all(results) or not pointers:
                entries = [ListedEntry.model_validate_json(raw) for values in results for raw in values]
                return pointers, entries
        raise ListsUnavailable(
            "the sanctions lists kept changing or a list version vanished while being read"
        )


def signature(pointers: dict[str, str]) -> str:
    return ",".join(f"{name}={version}" for name, version in sorted(pointers.items()))


class ScreeningCache:
    """The stage's screening index, rebuilt when a list version changes.

    The versions are looked up at most every ``recheck`` seconds (0: on every call): a list
    loaded is in force for the next batch at most that long after, and a worker handling small
    batches does not pay a round trip to the server for each of them.
    """

    def __init__(self, redis: aredis.Redis, settings: Settings, recheck: float = 1.0) -> None:
        self.store = SanctionsStore(redis, settings)
        self.candidates = settings.sanctions_candidates
        self.max_age = settings.sanctions_max_age
        self.index: ScreeningIndex | None = None
        self.recheck = recheck
        self._exceptions_digest = ""
        self._next_check = 0.0
        self.log = get_logger(component="sanctions")

    async def current(self) -> ScreeningIndex:
        if self.index is not None and time.monotonic() < self._next_check:
            return self.index
        self._next_check = time.monotonic() + self.recheck
        pointers = await self.store.pointers()
        if self.index is not None and self.index.version == signature(pointers):
            await self._exceptions(self.index)
            return self.index
        index = await self._build()
        self._exceptions_digest = ""
        await self._exceptions(index)
        self.index = index
        return index

    async def _exceptions(self, index: ScreeningIndex) -> None:
        """The reviewed exceptions in force, read again when they changed."""
        digest, found, problems = await self.store.exceptions()
        if digest == self._exceptions_digest:
            return
        self._exceptions_digest = digest
        index.exceptions = exceptions_from(found)
        for problem in problems:
            self.log.warning("sanctions exception refused", problem=problem)
        self.log.info("sanctions exceptions loaded", exceptions=len(found))

    async def _build(self) -> ScreeningIndex:
        pointers, entries = await self.store.read()
        version = signature(pointers)
        index = await asyncio.to_thread(ScreeningIndex.build, entries, version, self.candidates)
        self.log.info(
            "sanctions lists loaded"
            if pointers
            else "no sanctions lists loaded: party conditions never hold",
            lists=pointers,
            entries=len(index),
            names=len(index.names),
        )
        for meta in await self.store.lists():
            if (warning := too_old(meta, self.max_age)) is not None:
                self.log.warning("sanctions list too old", list=meta.list, date=meta.date, warning=warning)
        return index
