"""The report archive: reports written once by id, purged past retention, read back by time,
source, crossing and HS chapter (in SQL, on SQLite and PostgreSQL alike).

The archive stage writes (:func:`archive`), ``tradewatch archive purge`` and the stage's periodic
purge remove (:func:`purge`), backtests, lookbacks and flows read (:func:`query`, :func:`stream`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.report import ImportReport
from services.store.models import ArchivedReport
from services.wire import aware

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Incoming:
    """A report to archive: the model, its JSON as published, and when it reached the stream."""

    report: ImportReport
    raw: str
    received_at: datetime
    event_at: datetime


def chapters_of(report: ImportReport) -> list[str]:
    """The HS chapters (two digits) of the report's items, sorted, once each."""
    return sorted({item.hs_code[:2] for item in report.items if item.hs_code})


def joined(values: Sequence[str]) -> str:
    """``|84|85|`` (matched with ``LIKE '%|84|%'``), or ``""`` for none."""
    return "|" + "|".join(values) + "|" if values else ""


async def archive(session: AsyncSession, reports: Sequence[Incoming], now: datetime) -> tuple[int, int]:
    """Archive these reports; one archived before (by report id) is skipped. ``(written, repeated)``."""
    unique = list({r.report.report_id: r for r in reports}.values())
    known: set[str] = set()
    ids = [r.report.report_id for r in unique]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found = await session.scalars(
            select(ArchivedReport.report_id).where(ArchivedReport.report_id.in_(chunk))
        )
        known.update(found.all())
    written = 0
    for r in unique:
        if r.report.report_id in known:
            continue
        session.add(
            ArchivedReport(
                report_id=r.report.report_id,
                source=r.report.source,
                report=r.raw,
                reported_at=aware(r.report.reported_at) if r.report.reported_at is not None else None,
                received_at=r.received_at,
                event_at=r.event_at,
                crossing=r.report.crossing,
                chapters=joined(chapters_of(r.report)),
                archived_at=now,
            )
        )
        written += 1
    await session.flush()
    return written, len(reports) - written


async def purge(session: AsyncSession, before: datetime) -> int:
    """Remove reports received before ``before`` (retention counts from receipt); how many."""
    result = await session.execute(delete(ArchivedReport).where(ArchivedReport.received_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True, slots=True)
class Filter:
    """Which archived reports: by event time (``since`` inclusive, ``until`` exclusive), source,
    crossing (as written, case-insensitive) and HS chapter (two digits)."""

    since: datetime | None = None
    until: datetime | None = None
    source: str | None = None
    crossing: str | None = None
    chapter: str | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.since is not None:
            query = query.where(ArchivedReport.event_at >= self.since)
        if self.until is not None:
            query = query.where(ArchivedReport.event_at < self.until)
        if self.source is not None:
            query = query.where(ArchivedReport.source == self.source)
        if self.crossing is not None:
            query = query.where(func.lower(ArchivedReport.crossing) == self.crossing.lower())
        if self.chapter is not None:
            query = query.where(ArchivedReport.chapters.like(f"%|{self.chapter[:2]}|%"))
        return query


async def query(
    session: AsyncSession, where: Filter | None = None, limit: int | None = None
) -> list[ArchivedReport]:
    """Archived reports in event-time order (then report id)."""
    q = (
        (where or Filter())
        .apply(select(ArchivedReport))
        .order_by(ArchivedReport.event_at, ArchivedReport.report_id)
    )
    if limit is not None:
        q = q.limit(limit)
    return list((await session.scalars(q)).all())


async def count(session: AsyncSession, where: Filter | None = None) -> int:
    q = (where or Filter()).apply(select(func.count()).select_from(ArchivedReport))
    return int(await session.scalar(q) or 0)


async def stream(
    session: AsyncSession, where: Filter | None = None, page: int = 2_000
) -> AsyncIterator[ArchivedReport]:
    """Every matching report in event-time order, read a page at a time (keyset on time and id)."""
    after: tuple[datetime, str] | None = None
    while True:
        q = (where or Filter()).apply(select(ArchivedReport))
        if after is not None:
            at, rid = after
            q = q.where(
                (ArchivedReport.event_at > at)
                | ((ArchivedReport.event_at == at) & (ArchivedReport.report_id > rid))
            )
        rows = list(
            (
                await session.scalars(
                    q.order_by(ArchivedReport.event_at, ArchivedReport.report_id).limit(page)
                )
            ).all()
        )
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = (rows[-1].event_at, rows[-1].report_id)
