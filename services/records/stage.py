"""The records stage: alerts in, cases in the store of record out, acked only once committed.

It reads every partition of the alert stream through its own consumer group (``records``), as
the notifier does through ``notify``: each group sees every alert. For a batch it decodes the
alerts (a malformed one is dead-lettered, the rest go on), writes them into their reports' cases
in one transaction (:func:`services.casework.records.record_alerts`, idempotent by alert id),
commits, and only then acks the entries. Killed at any point, nothing is lost (an entry not
acked is delivered again) or doubled (an alert id recorded before is skipped).

A database that does not answer (down, unreachable, locked past its timeout) stops this stage's
acks and nothing else: the batch in hand waits, retrying with backoff, and is stored once the
database answers; meanwhile the reclaimer claims nothing (see ``GatedStage``), so an outage never
pushes entries towards the dead letters. The other stages read their own groups and go on.

In the embedded default (no ``TRADEWATCH_DATABASE_URL``) the stage brings the SQLite file's schema
up to date by itself; with a configured database it waits, saying so, until ``tradewatch db
upgrade`` has been run. It also publishes the screening exceptions in force for the rules stage,
at start and every ``EXCEPTIONS_INTERVAL`` (so one that lapses leaves the published set too).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from schemas.alert import Alert
from schemas.streams import RECORDS_GROUP
from services.casework import screening
from services.casework.records import record_alerts
from services.logging import get_logger
from services.runtime import Consumes, Context, deadletter
from services.runtime.deadletter import DeadLetter
from services.store import Store
from services.store.engine import describe
from services.store.writer import Writer
from services.wire import BadMessage, Entry, decode_alert

EXCEPTIONS_INTERVAL = 30.0
"""Seconds between two publications of the screening exceptions in force."""


class RecordsStage:
    name = "records"

    def __init__(self, ctx: Context, store: Store | None = None) -> None:
        self.ctx = ctx
        settings = ctx.settings
        names = settings.streams
        self.names = names
        self.partitions = [
            Consumes(names.alert_stream(p), RECORDS_GROUP, names.alerts_dead_stream(p))
            for p in range(names.partitions)
        ]
        self.store = store or Store.from_settings(settings)
        self.due = settings.case_due
        self.log = get_logger(stage=self.name)
        self.writer = Writer(self.store, ctx.settings.embedded_store, self.log, "alerts")
        self._stop = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Nothing here waits for the database: a database down at start stops this stage's acks
        # (the first batch waits for it), not the process and the stages beside it.
        self.log.info("store of record", database=self.store.shown)
        self._publisher = asyncio.create_task(self._publish_exceptions(), name="records-exceptions")

    async def stop(self) -> None:
        self._stop.set()
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        await self.store.dispose()

    async def busy(self) -> bool:
        return False

    async def can_handle(self) -> bool:
        return self.writer.available

    async def handle(self, batch: Sequence[Entry], consumes: Consumes) -> None:
        started = time.perf_counter()
        decoded: list[tuple[Entry, Alert]] = []
        dead: list[DeadLetter] = []
        for entry in batch:
            try:
                decoded.append((entry, decode_alert(entry, self.ctx.settings.max_report_bytes)))
            except BadMessage as error:
                dead.append(DeadLetter(entry, str(error)))
        await deadletter.bury(self.ctx.redis, self.name, consumes, dead)
        if not decoded:
            return
        alerts = [a for _, a in decoded]
        done = await self.writer.write(lambda session: record_alerts(session, alerts, self.due))
        # Acked only now that the transaction is committed: a crash before this line leaves the
        # entries pending, and their second delivery finds every alert id recorded.
        await self.ctx.redis.xack(consumes.stream, consumes.group, *[e.id for e, _ in decoded])
        self.log.info(
            "batch recorded",
            entries=len(batch),
            cases_opened=done.opened,
            findings_attached=done.attached,
            after_close=done.after_close,
            repeated=done.repeated,
            report_ids=sorted({a.report_id for _, a in decoded})[:50],
            ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def _publish_exceptions(self) -> None:
        while not self._stop.is_set():
            try:
                await self.writer.prepare()
                count = await screening.publish(self.store, self.ctx.redis, self.ctx.settings)
                self.log.debug("screening exceptions published", exceptions=count)
            except Exception as error:
                self.log.warning("screening exceptions not published", error=describe(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), EXCEPTIONS_INTERVAL)
