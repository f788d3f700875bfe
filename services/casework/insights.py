"""What the cases say in numbers: cases per week by crossing or category, and per rule how many
cases it raised and what share of those closed were false positives (where alert fatigue starts).

Counted from the store of record, by any user who may read cases. Weeks start on Monday (UTC).
A case counts in the week it was opened, once per crossing and once per category it has.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.casework.access import reading
from services.store import Store
from services.store.models import Case, Finding, Outcome, User

UNKNOWN = "(not reported)"


@dataclass(frozen=True)
class RuleStats:
    rule_id: str
    cases: int
    """Cases with a finding of this rule recorded in the period."""
    closed: int
    """Of those, cases closed (or awaiting approval) with an outcome."""
    false_positives: int

    @property
    def false_positive_share(self) -> float | None:
        return self.false_positives / self.closed if self.closed else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "false_positive_share": self.false_positive_share}


@dataclass(frozen=True)
class Weekly:
    """Cases opened per week, one series per crossing (or category)."""

    by: str
    weeks: list[date]
    series: dict[str, list[int]]

    def as_dict(self) -> dict[str, Any]:
        return {"by": self.by, "weeks": [w.isoformat() for w in self.weeks], "series": self.series}


def week_of(when: datetime) -> date:
    day = when.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


async def rule_stats(
    store: Store, actor: str, since: datetime, rule_ids: Sequence[str] = ()
) -> dict[str, RuleStats]:
    """Per rule (each of ``rule_ids`` at least, with zeros), the cases it raised since ``since``."""

    async def work(session: AsyncSession, _: User) -> dict[str, RuleStats]:
        closed = case((Case.outcome.is_not(None), Case.id))
        false = case((Case.outcome == Outcome.FALSE_POSITIVE.value, Case.id))
        rows = (
            await session.execute(
                select(
                    Finding.rule_id,
                    func.count(distinct(Case.id)),
                    func.count(distinct(closed)),
                    func.count(distinct(false)),
                )
                .join(Case, Case.id == Finding.case_id)
                .where(Finding.recorded_at >= since)
                .group_by(Finding.rule_id)
            )
        ).all()
        found = {r: RuleStats(r, int(n), int(c), int(f)) for r, n, c, f in rows}
        wanted = list(dict.fromkeys([*rule_ids, *sorted(found)]))
        return {r: found.get(r, RuleStats(r, 0, 0, 0)) for r in wanted}

    return await reading(store, actor, "reading rule statistics", "case", "*", work)


async def cases_per_week(
    store: Store,
    actor: str,
    by: Literal["crossing", "category"],
    weeks: int = 12,
    now: datetime | None = None,
) -> Weekly:
    """Cases opened in each of the last ``weeks`` weeks (this one included), by crossing or category."""
    last = week_of(now or datetime.now(UTC))
    starts = [last - timedelta(weeks=n) for n in reversed(range(weeks))]
    since = datetime.combine(starts[0], datetime.min.time(), UTC)

    async def work(session: AsyncSession, _: User) -> Weekly:
        counted: dict[str, Counter[date]] = defaultdict(Counter)
        if by == "crossing":
            rows = (
                await session.execute(select(Case.opened_at, Case.crossing).where(Case.opened_at >= since))
            ).all()
            for opened, crossing in rows:
                counted[crossing or UNKNOWN][week_of(opened)] += 1
        else:
            found = (
                await session.execute(
                    select(Case.id, Case.opened_at, Finding.categories)
                    .join(Finding, Finding.case_id == Case.id)
                    .where(Case.opened_at >= since)
                    .distinct()
                )
            ).all()
            per_case: dict[int, tuple[datetime, set[str]]] = {}
            for case_id, opened, joined in found:
                per_case.setdefault(case_id, (opened, set()))[1].update(c for c in joined.split("|") if c)
            for opened, named in per_case.values():
                for category in named or {UNKNOWN}:
                    counted[category][week_of(opened)] += 1
        series = {
            name: [weekly[w] for w in starts]
            for name, weekly in sorted(counted.items(), key=lambda kv: -sum(kv[1].values()))
        }
        return Weekly(by, starts, series)

    return await reading(store, actor, "reading case statistics", "case", "*", work)


__all__ = ["RuleStats", "Weekly", "cases_per_week", "rule_stats", "week_of"]
