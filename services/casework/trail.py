"""The audit trail for people: verified, exported for a regulator, purged only past retention."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from services.casework.access import acting
from services.casework.access import reading as as_reader
from services.store import Store, audit
from services.store.models import Case, CaseState, Role

FORMATS = ("jsonl", "csv")


async def verify(store: Store) -> audit.Verification:
    """Walk the chain; anyone who can reach the database may (it discloses no content)."""
    async with store.reading() as session:
        return await audit.verify(session)


async def export(
    store: Store, actor: str, since: datetime | None, until: datetime | None, fmt: str
) -> AsyncGenerator[str, None]:
    """The entries of a period as JSON Lines or CSV, a line at a time. The export itself is
    recorded in the trail: who, which period, how many entries, and whether it was read through."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: jsonl or csv")
    period = {"since": since, "until": until, "format": fmt}

    async def allowed(session: Any, user: Any) -> str:
        return str(user.name)

    name = await as_reader(
        store, actor, "exporting the audit trail", "audit", "*", allowed, need=Role.REVIEWER
    )
    count = 0
    complete = False
    try:
        if fmt == "csv":
            yield audit.csv_header()
        async with store.reading() as session:
            async for row in audit.export_rows(session, since, until):
                count += 1
                yield audit.as_csv_line(row) if fmt == "csv" else next(iter(audit.as_jsonl([row])))
        complete = True
    finally:
        # Recorded however it ended: the entries that left the store are accounted for, and an
        # export cut short (a closed pipe, an error) says so.
        async with store.writing() as session:
            after = {**period, "entries": count, "complete": complete}
            await audit.append(session, name, "audit.exported", "audit", "*", after=after)


@dataclass(frozen=True)
class Purged:
    cutoff: datetime
    entries: int
    anchor: int
    cases: int


async def purge(store: Store, actor: str, retention: float, now: datetime | None = None) -> Purged:
    """Delete audit entries, and cases closed, longer ago than the retention; never younger."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=retention)

    async def work(session: Any, by: Any) -> Purged:
        old_cases = select(Case.id).where(Case.state == CaseState.CLOSED.value, Case.closed_at < cutoff)
        n_cases = int(await session.scalar(select(func.count()).select_from(old_cases.subquery())) or 0)
        if n_cases:
            await session.execute(delete(Case).where(Case.id.in_(old_cases)))
        entries, anchor = await audit.purge_before(session, cutoff)
        await audit.append(
            session, by.name, "audit.purged", "audit", "*",
            after={"cutoff": cutoff, "retention_s": retention, "entries": entries, "anchor": anchor, "cases": n_cases},
        )  # fmt: skip
        return Purged(cutoff, entries, anchor, n_cases)

    return await acting(store, actor, Role.ADMIN, "purging past retention", "audit", "*", work)


__all__ = ["FORMATS", "Purged", "export", "purge", "verify"]
