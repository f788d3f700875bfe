"""Flows over time: monthly value and count of archived reports per HS chapter and crossing, with the
months far above their trailing average marked.

A report counts in the month of its event time, once under each HS chapter its items have (a
report without HS codes is left out: its chapter is not known), at its crossing as written
(``(none)`` without one). Its value in a chapter is the sum of quantity x unit price of its items
of that chapter, converted to the rates table's base currency (items without a price, or in a
currency the table lacks, add nothing to the value but the report still counts).

A month is a surge when it has at least ``min_reports`` reports and its count or its value is
more than ``factor`` times the mean of the ``trailing`` months before it (a month without reports
counts as zero; the series' first month has nothing to compare with and is never marked).

:func:`flows` is the core (the command line and the console's dashboard call it); each
:class:`FlowRow` has ``as_dict()``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from schemas.report import ImportReport
from services.money import Rates
from services.store import Store
from services.store import archive as reports

NO_CROSSING = "(none)"


@dataclass(frozen=True, slots=True)
class FlowRow:
    month: str
    """``2026-03``."""
    chapter: str
    crossing: str
    reports: int
    value: float
    """In the rates table's base currency."""
    trailing_reports: float | None
    """Mean count of the trailing months (None: the series' first month)."""
    trailing_value: float | None
    surge: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _month(at: datetime) -> tuple[int, int]:
    return at.year, at.month


def _next(month: tuple[int, int]) -> tuple[int, int]:
    y, m = month
    return (y + 1, 1) if m == 12 else (y, m + 1)


def chapter_values(report: ImportReport, rates: Rates) -> dict[str, float]:
    """Each HS chapter of the report's items and its value in the base currency."""
    out: dict[str, float] = {}
    for item in report.items:
        if not item.hs_code:
            continue
        chapter = item.hs_code[:2]
        value = 0.0
        if item.quantity is not None and item.unit_price is not None and item.currency:
            converted = rates.convert(item.quantity * item.unit_price, item.currency, rates.base)
            value = converted or 0.0
        out[chapter] = out.get(chapter, 0.0) + value
    return out


def monthly(
    points: list[tuple[datetime, str | None, dict[str, float]]],
    factor: float = 2.0,
    min_reports: int = 3,
    trailing: int = 3,
) -> list[FlowRow]:
    """The pure core: (event time, crossing, value per chapter) of each report into marked rows."""
    series: dict[tuple[str, str], dict[tuple[int, int], list[float]]] = defaultdict(dict)
    for at, crossing, values in points:
        for chapter, value in values.items():
            cell = series[(chapter, crossing or NO_CROSSING)].setdefault(_month(at), [0, 0.0])
            cell[0] += 1
            cell[1] += value
    rows: list[FlowRow] = []
    for (chapter, crossing), months in series.items():
        month = min(months)
        last = max(months)
        history: list[tuple[float, float]] = []
        while month <= last:
            count, value = months.get(month, [0, 0.0])
            window = history[-trailing:]
            mean_count = sum(c for c, _ in window) / len(window) if window else None
            mean_value = sum(v for _, v in window) / len(window) if window else None
            surge = (
                mean_count is not None
                and mean_value is not None
                and count >= min_reports
                and (count > factor * mean_count or value > factor * mean_value)
            )
            if count:
                rows.append(
                    FlowRow(
                        f"{month[0]:04d}-{month[1]:02d}", chapter, crossing, int(count), round(value, 2),
                        None if mean_count is None else round(mean_count, 3),
                        None if mean_value is None else round(mean_value, 2),
                        surge,
                    )
                )  # fmt: skip
            history.append((count, value))
            month = _next(month)
    return sorted(rows, key=lambda r: (r.month, r.chapter, r.crossing))


async def flows(
    store: Store,
    rates: Rates,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    factor: float = 2.0,
    min_reports: int = 3,
    trailing: int = 3,
) -> list[FlowRow]:
    """Monthly rows from the archive (event time in ``[since, until)``), sorted by month, chapter, crossing."""
    points: list[tuple[datetime, str | None, dict[str, float]]] = []
    async with store.reading() as session:
        async for row in reports.stream(session, reports.Filter(since=since, until=until)):
            if not row.chapters:
                continue
            report = ImportReport.model_validate_json(row.report)
            points.append((row.event_at, row.crossing, chapter_values(report, rates)))
    return monthly(points, factor, min_reports, trailing)


def render(rows: list[FlowRow], currency: str) -> str:
    if not rows:
        return "no archived reports with HS codes"
    lines = [
        f"{'month':7}  {'HS':2}  {'crossing':24} {'reports':>7} {'value ' + currency:>16}  trailing mean"
    ]
    for r in rows:
        mean = "-" if r.trailing_reports is None else f"{r.trailing_reports:g} reports"
        mark = "  SURGE" if r.surge else ""
        lines.append(
            f"{r.month:7}  {r.chapter:2}  {r.crossing[:24]:24} {r.reports:7d} {r.value:16,.0f}  {mean}{mark}"
        )
    surges = sum(1 for r in rows if r.surge)
    lines.append(f"{len(rows)} row(s), {surges} marked as surge")
    return "\n".join(lines)
