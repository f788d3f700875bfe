"""A stage's writes into the store of record, riding out outages.

The records and archive stages store a batch and only then ack it. While the database does not
answer (down, unreachable, locked past its timeout), :meth:`Writer.write` waits and tries again
with backoff, saying so once, and :attr:`Writer.available` turns false so the stage's reclaimer
claims nothing meanwhile (an outage never pushes entries towards the dead letters); any other
error is a defect and is raised at once. Before the first write the schema is brought up to date
in the embedded default (the SQLite file), else waited for (``tradewatch db upgrade``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services.store import migrate
from services.store.engine import Store, StoreUnavailable, describe, unavailable

T = TypeVar("T")
RETRY_FIRST = 0.5
RETRY_MAX = 10.0


class Writer:
    def __init__(self, store: Store, embedded: bool, log: Any, waiting: str) -> None:
        """``waiting``: what stays pending while the database is away (``alerts``, ``reports``)."""
        self.store = store
        self.embedded = embedded
        self.log = log
        self.waiting = waiting
        self.available = True
        self._schema_ready = False

    async def prepare(self) -> None:
        """The schema is up to date: migrated here in the embedded default, else waited for."""
        if self._schema_ready:
            return
        if self.embedded:
            before, after = await migrate.upgrade(self.store)
            if before != after:
                self.log.info(
                    "store of record migrated", database=self.store.shown, before=before, after=after
                )
        elif missing := await migrate.pending(self.store):
            raise StoreUnavailable(
                f"the database lacks migrations {', '.join(missing)}: run `tradewatch db upgrade`"
            )
        self._schema_ready = True

    async def write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """``work`` in one writing transaction, committed; tried again until the database answers."""
        delay = RETRY_FIRST
        while True:
            try:
                await self.prepare()
                async with self.store.writing() as session:
                    done = await work(session)
            except Exception as error:
                if not unavailable(error):
                    raise  # a defect, not an outage: redelivered, dead-lettered past the limit
                if self.available:
                    self.log.error(
                        f"store of record unreachable: {self.waiting} stay pending until it answers",
                        database=self.store.shown,
                        error=describe(error),
                    )
                self.available = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if not self.available:
                self.log.warning("store of record answers again", database=self.store.shown)
                self.available = True
            return done
