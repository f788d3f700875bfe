"""The archive stage: reports in, the report archive in the store of record out, acked once committed.

It reads every partition of the report stream through its own consumer group (``archive``), as
the rules stage does through ``rules``: each group sees every report. For a batch it decodes the
reports (a malformed one is acked, logged and counted, not dead-lettered: the rules stage reads
the same entries and dead-letters it, and one dead letter is what an operator should replay), writes them in one transaction (:func:`services.store.archive.archive`,
idempotent by report id), commits, and only then acks the entries: killed at any point, nothing
is lost or doubled.

A database that does not answer stops this stage's acks and nothing else, as for the records
stage (``GatedStage``: the reclaimer claims nothing meanwhile). In the embedded default the
SQLite file's schema is brought up to date here; with a configured database it waits for
``tradewatch db upgrade``. Every ``archive_purge_interval`` it removes reports received more than
``archive_retention`` ago (0: kept for ever). Every ``LOOKBACK_CHECK`` seconds it compares the
sanctions lists in force with the versions the last lookback saw, and when one changed runs a
lookback (:mod:`services.casework.lookback`): the archive's parties screened against the new and
changed entries, the hits recorded as cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from schemas.streams import ARCHIVE_GROUP
from services import metrics
from services.casework import lookback
from services.logging import get_logger
from services.runtime import Consumes, Context
from services.sanctions.matcher import exceptions_from
from services.sanctions.store import SanctionsStore
from services.store import Store
from services.store import archive as reports
from services.store.engine import describe
from services.store.writer import Writer
from services.wire import BadMessage, Entry, as_text, decode_report, event_time, received_at


class ArchiveStage:
    name = "archive"

    def __init__(self, ctx: Context, store: Store | None = None) -> None:
        self.ctx = ctx
        names = ctx.settings.streams
        self.partitions = [
            Consumes(names.report_stream(p), ARCHIVE_GROUP, names.reports_dead_stream(p))
            for p in range(names.partitions)
        ]
        self.store = store or Store.from_settings(ctx.settings)
        self.log = get_logger(stage=self.name)
        self.writer = Writer(self.store, ctx.settings.embedded_store, self.log, "reports")
        self._stop = asyncio.Event()
        self._purger: asyncio.Task[None] | None = None
        self._looker: asyncio.Task[None] | None = None
        self.lookback_check = lookback.LOOKBACK_CHECK

    async def start(self) -> None:
        self.log.info("report archive", database=self.store.shown)
        if self.ctx.settings.archive_retention > 0:
            self._purger = asyncio.create_task(self._purge_periodically(), name="archive-purge")
        self._looker = asyncio.create_task(self._look_back_on_changes(), name="archive-lookback")

    async def stop(self) -> None:
        self._stop.set()
        for task in (self._purger, self._looker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.store.dispose()

    async def busy(self) -> bool:
        return False

    async def can_handle(self) -> bool:
        return self.writer.available

    async def handle(self, batch: Sequence[Entry], consumes: Consumes) -> None:
        started = time.perf_counter()
        settings = self.ctx.settings
        incoming: list[tuple[Entry, reports.Incoming]] = []
        malformed: list[Entry] = []
        for entry in batch:
            try:
                report = decode_report(entry, settings.max_report_bytes)
            except BadMessage as error:
                malformed.append(entry)
                self.log.warning("malformed report not archived (the rules stage dead-letters it)",
                            entry=entry.id, stream=consumes.stream, reason=str(error))  # fmt: skip
                continue
            received = received_at(entry.id)
            raw = as_text(entry.fields[b"report"])
            incoming.append((entry, reports.Incoming(report, raw, received, event_time(report, received))))
        if malformed:
            await self.ctx.redis.xack(consumes.stream, consumes.group, *(e.id for e in malformed))
            metrics.SKIPPED.labels(self.name).inc(len(malformed))
        if not incoming:
            return
        batch_in = [r for _, r in incoming]
        written, repeated = await self.writer.write(
            lambda session: reports.archive(session, batch_in, datetime.now(UTC))
        )
        # Acked only now that the transaction is committed.
        await self.ctx.redis.xack(consumes.stream, consumes.group, *[e.id for e, _ in incoming])
        self.log.info(
            "batch archived",
            entries=len(batch),
            archived=written,
            repeated=repeated,
            report_ids=[r.report.report_id for _, r in incoming][:50],
            ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def purge_once(self) -> int:
        """Remove reports received before the retention; how many."""
        await self.writer.prepare()
        before = datetime.now(UTC) - timedelta(seconds=self.ctx.settings.archive_retention)
        async with self.store.writing() as session:
            return await reports.purge(session, before)

    async def _purge_periodically(self) -> None:
        while not self._stop.is_set():
            try:
                removed = await self.purge_once()
                if removed:
                    self.log.info("archived reports past retention removed", removed=removed)
            except Exception as error:
                self.log.warning("archive purge failed", error=describe(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.ctx.settings.archive_purge_interval)

    async def look_back_if_changed(self) -> lookback.Lookback | None:
        """A lookback when a list in force is not the version the last lookback saw; else None."""
        await self.writer.prepare()
        sanctions = SanctionsStore(self.ctx.redis, self.ctx.settings)
        pointers = await sanctions.pointers()
        seen = await lookback.baselines(self.store)
        if all(seen.get(name) == version for name, version in pointers.items()):
            return None
        settings = self.ctx.settings
        _, found, _ = await sanctions.exceptions()
        result = await lookback.lookback(
            self.store,
            await lookback.read_lists(sanctions),
            lookback.window_start(settings.lookback_window),
            settings.case_due,
            exceptions=exceptions_from(found),
            candidates=settings.sanctions_candidates,
        )
        self.log.info(
            "lookback after a sanctions list change",
            lists=[f"{c.list_name} {c.previous} -> {c.current}" for c in result.lists],
            entries=result.entries,
            reports=result.reports,
            hits=len(result.hits),
            cases_opened=result.cases_opened,
            findings_added=result.findings_added,
        )
        return result

    async def _look_back_on_changes(self) -> None:
        while not self._stop.is_set():
            try:
                await self.look_back_if_changed()
            except Exception as error:
                self.log.warning("lookback failed: tried again later", error=describe(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.lookback_check)
