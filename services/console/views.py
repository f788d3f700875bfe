"""What the pages and the JSON endpoints show, built once for both: the inbox from a query
string, a case with its parties and HS headings, the rules with their figures, the dashboard."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from schemas.alert import Severity
from schemas.report import ImportReport
from schemas.rules import Rule, RuleFile
from services import cases as caseview
from services.casework import insights
from services.casework.access import Refused
from services.casework.workflow import SORTS, CaseDetail, CaseFilter, CasePage, parse_severity, parse_state
from services.console.parties import PartyMatch, party_matches
from services.goods.hscodes import hs_display
from services.history.backtest import Backtest, RuleFiles, backtest
from services.history.flows import FlowRow, flows
from services.notify.render import amount, moment, quoted
from services.notify.silences import MATCH_KEYS, SilenceStore, describe
from services.sanctions.store import ScreeningCache
from services.store import Store
from services.store.models import ArchivedReport, CaseState, Outcome
from services.yamlfile import ConfigError, load

if TYPE_CHECKING:
    from services.console.app import Console

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
FILTER_KEYS = ("state", "severity", "crossing", "category", "rule", "assignee", "from", "to", "sort")


def _day(value: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(value.strip()).replace(tzinfo=UTC)
    except ValueError:
        raise Refused(f"{what} {value!r} is not a date (YYYY-MM-DD)") from None


def _int(value: str | None, what: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise Refused(f"{what} {value!r} is not a number") from None
    if not low <= number <= high:
        raise Refused(f"{what} is from {low} to {high}; {number} is not")
    return number


def inbox_filter(query: Mapping[str, str]) -> CaseFilter:
    """A case filter from a query string (``?state=open&severity=critical&sort=due&page=2``);
    Refused with a sentence for a value that means nothing."""
    states = [parse_state(s) for s in query.get("state", "").split(",") if s.strip()]
    severities = [parse_severity(s) for s in query.get("severity", "").split(",") if s.strip()]
    until = _day(query["to"], "to") + timedelta(days=1) if query.get("to") else None
    size = _int(query.get("size"), "size", PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = _int(query.get("page"), "page", 1, 1, 1_000_000)
    order = query.get("sort") or "urgency"
    if order not in SORTS:
        raise Refused(f"{order!r} is not a sort order: {', '.join(SORTS)}")
    return CaseFilter(
        states=states,
        severities=severities,
        crossing=query.get("crossing") or None,
        category=query.get("category") or None,
        rule=query.get("rule") or None,
        assignee=query.get("assignee") or None,
        since=_day(query["from"], "from") if query.get("from") else None,
        until=until,
        order=order,
        limit=size,
        offset=(page - 1) * size,
    )


def page_dict(found: CasePage, now: datetime) -> dict[str, Any]:
    return {
        "total": found.total,
        "by_state": {s.value: n for s, n in found.by_state.items()},
        "offset": found.offset,
        "limit": found.limit,
        "cases": [c.as_dict(now) for c in found.cases],
    }


_IN_TEXT = re.compile(r'"([^"]+)" in the report text')


@dataclass
class Received:
    """The report as it was published, from the archive, with the words the case rests on marked."""

    report: ImportReport
    received_at: datetime
    text: list[tuple[str, bool]]
    """The report's text cut into pieces, marked or not (empty without a text)."""


@dataclass
class CaseView:
    detail: CaseDetail
    parties: list[PartyMatch]
    headings: dict[str, list[tuple[str, str]]]
    """Per HS code of an item: (code, text) of its heading and subheading in the nomenclature."""
    received: Received | None = None
    """None where the archive does not hold the report (archived before it existed, or purged)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.detail.as_dict(),
            "parties": [
                {
                    "role": p.role,
                    "as_reported": p.query,
                    "reference": p.reference,
                    "how": p.how,
                    "score": p.score,
                    "exception": p.exception,
                    "listed": p.entry.model_dump(mode="json") if p.entry else None,
                }
                for p in self.parties
            ],
            "hs_headings": {
                code: [{"code": c, "text": t} for c, t in rows] for code, rows in self.headings.items()
            },
        }


async def case_view(console: Console, actor: str, case_id: int) -> CaseView:
    detail = await console.casework.show(actor, case_id)
    lines = [line for f in detail.case.findings for r in f.reasons for line in r.why]
    lines += detail.case.common
    parties = await party_matches(lines, console.entries)
    headings: dict[str, list[tuple[str, str]]] = {}
    nomenclature = console.nomenclature
    for item in detail.case.items:
        code = (item.hs_code or "").replace(".", "")
        if not code or code in headings:
            continue
        rows = []
        for cut in (2, 4, 6):
            part = code[:cut]
            if len(code) >= cut and nomenclature is not None and part in nomenclature.descriptions:
                rows.append((hs_display(part) or part, nomenclature.descriptions[part]))
        headings[code] = rows
    return CaseView(detail, parties, headings, await _received(console, detail.case, parties))


async def _received(console: Console, case: caseview.Case, parties: list[PartyMatch]) -> Received | None:
    async with console.store.reading() as session:
        row = (
            await session.scalars(select(ArchivedReport).where(ArchivedReport.report_id == case.report_id))
        ).first()
    if row is None:
        return None
    report = ImportReport.model_validate_json(row.report)
    text = report.text or ""
    spans: list[tuple[int, int]] = []
    for item in case.items:
        if item.quote and item.marks and (at := text.find(item.quote)) >= 0:
            spans += [(at + a, at + b) for a, b in item.marks]
    lowered = text.lower()
    for line in [*case.common, *(w for f in case.findings for r in f.reasons for w in r.why)]:
        for word in _IN_TEXT.findall(line):  # '"technicians" in the report text'
            start = lowered.find(word.lower())
            while start >= 0:
                spans.append((start, start + len(word)))
                start = lowered.find(word.lower(), start + 1)
    for party in parties:  # a name found in the text, marked wherever it stands
        start = text.find(party.query) if party.query else -1
        while start >= 0:
            spans.append((start, start + len(party.query)))
            start = text.find(party.query, start + 1)
    return Received(report, row.received_at, caseview.marked(text, spans) if text else [])


class RuleFileCache:
    """The rule files as written, read again only when one of them changes."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self._stamp: tuple[tuple[str, int | None], ...] | None = None
        self._rules: list[tuple[Rule, str]] = []
        self._problems: list[str] = []

    def read(self) -> tuple[list[tuple[Rule, str]], list[str]]:
        stamp = tuple((str(p), p.stat().st_mtime_ns if p.exists() else None) for p in self.paths)
        if stamp != self._stamp:
            rules: list[tuple[Rule, str]] = []
            problems: list[str] = []
            for path in self.paths:
                try:
                    rules += [(r, str(path)) for r in load(path).validate(RuleFile).rules]
                except ConfigError as error:
                    problems.append(str(error))
            self._stamp, self._rules, self._problems = stamp, rules, problems
        return self._rules, list(self._problems)


@dataclass
class RuleRow:
    rule: Rule
    file: str
    stats: insights.RuleStats

    def as_dict(self) -> dict[str, Any]:
        r = self.rule
        return {
            "id": r.id,
            "title": r.title,
            "description": r.description,
            "severity": r.severity.value,
            "enabled": r.enabled,
            "tags": r.tags,
            "legal_basis": r.legal_basis,
            "file": self.file,
            "kind": "frequency" if r.frequency else "new_term" if r.new_term else "per report",
            "last_30_days": self.stats.as_dict(),
        }


async def rule_rows(console: Console, actor: str) -> tuple[list[RuleRow], str, list[str]]:
    """The rules of the configured files, with their cases in the last 30 days; where the live
    rule set is from; problems reading the files."""
    rules, problems = console.rule_files.read()
    raw = await console.redis.get(console.settings.streams.key("ruleset", "rules"))
    live_from = (
        f"the live rule set, version {json.loads(raw)['version']}"
        if raw is not None
        else "unknown: no rules worker has stored its rule set yet"
    )
    since = datetime.now(UTC) - timedelta(days=30)
    stats = await insights.rule_stats(console.store, actor, since, [r.id for r, _ in rules])
    return [RuleRow(r, f, stats[r.id]) for r, f in rules], live_from, problems


@dataclass
class Flows:
    """The archive's last months for the dashboard: reports per month and HS chapter (all
    crossings), and the rows marked as surges (a month far above its trailing months)."""

    months: list[str]
    series: dict[str, list[int]]
    surges: list[FlowRow]
    currency: str

    @property
    def marked(self) -> list[int]:
        return sorted({self.months.index(r.month) for r in self.surges if r.month in self.months})

    def as_dict(self) -> dict[str, Any]:
        return {
            "months": self.months,
            "reports_by_chapter": self.series,
            "surges": [r.as_dict() for r in self.surges],
            "currency": self.currency,
        }


def _months_back(now: datetime, n: int) -> list[str]:
    year, month = now.year, now.month
    out = []
    for _ in range(n):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return out[::-1]


async def recent_flows(console: Console, months: int = 12) -> Flows:
    """Flows of the last ``months`` months (by event time), kept for a minute: the archive is
    read whole for them, and a dashboard is looked at more often than it changes."""
    now = datetime.now(UTC)
    cached = console.cache.get("flows")
    if cached is not None and cached[0] > now.timestamp():
        return cached[1]  # type: ignore[no-any-return]
    labels = _months_back(now, months)
    since = datetime.fromisoformat(labels[0] + "-01").replace(tzinfo=UTC)
    rows = await flows(console.store, console.rates, since=since) if console.rates is not None else []
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(f"HS {r.chapter}", {}).setdefault(r.month, 0)
        counts[f"HS {r.chapter}"][r.month] += r.reports
    series = {
        chapter: [per_month.get(m, 0) for m in labels]
        for chapter, per_month in sorted(counts.items(), key=lambda kv: -sum(kv[1].values()))
    }
    currency = console.rates.base if console.rates is not None else ""
    found = Flows(labels, series, [r for r in rows if r.surge], currency)
    console.cache["flows"] = (now.timestamp() + 60, found)
    return found


async def dashboard(console: Console, actor: str, weeks: int = 12) -> dict[str, Any]:
    now = datetime.now(UTC)
    by_crossing = await insights.cases_per_week(console.store, actor, "crossing", weeks, now)
    by_category = await insights.cases_per_week(console.store, actor, "category", weeks, now)
    stats = await insights.rule_stats(console.store, actor, now - timedelta(days=90))
    rules = sorted(stats.values(), key=lambda s: (-(s.false_positive_share or -1), -s.cases, s.rule_id))
    return {
        "weeks": weeks,
        "by_crossing": by_crossing,
        "by_category": by_category,
        "rules": rules,
        "flows": await recent_flows(console),
    }


async def silences(console: Console, everything: bool) -> list[dict[str, str]]:
    import time

    store = SilenceStore(console.redis, console.settings.streams.notify_namespace)
    now = time.time()
    counts = await store.counted()
    return [describe(s, counts.get(s.id, 0), now) for s in await store.all() if everything or s.active(now)]


def _day_text(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else ""


def _ago(value: datetime) -> str:
    seconds = (datetime.now(UTC) - value).total_seconds()
    late = seconds >= 0
    seconds = abs(seconds)
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            text = f"{int(seconds // size)} {unit}"
            break
    else:
        text = "now"
    return f"{text} ago" if late else f"in {text}"


class Busy(Refused):
    """A backtest runs already: one at a time."""


async def run_backtest(console: Console, text: str, since: str | None, until: str | None) -> Backtest:
    """The archived reports replayed through the live rule files and the pasted one (as
    ``tradewatch rules backtest --rules`` does), in two worker processes started afresh (a web
    server's process is not forked), off the request loop; party conditions screened against
    the lists in force. One at a time; a bad rule file is a ConfigError with file and line."""
    if not text.strip():
        raise Refused("paste a rule file (YAML) to try, or choose one")
    start = _day(since, "from") if since else None
    end = _day(until, "to") + timedelta(days=1) if until else None
    settings = console.settings
    live = RuleFiles(
        tuple(settings.rules_files),
        settings.catalog_file,
        settings.rates_file,
        tuple(settings.exceptions_files),
    )
    screening = await ScreeningCache(console.redis, settings, recheck=0).current()
    url = console.store.url.render_as_string(hide_password=False)

    def work() -> Backtest:
        async def go() -> Backtest:
            store = Store(url)  # a loop of its own, so a store of its own
            try:
                with RuleFiles.from_text(text, like=live) as proposed:
                    return await backtest(
                        store, live, proposed, start, end, workers=2, horizon=settings.backfill_horizon,
                        screening=screening, start_method="spawn",
                    )  # fmt: skip
            finally:
                await store.dispose()

        return asyncio.run(go())

    if console.backtesting.locked():
        raise Busy("a backtest is running already; try again when it is done")
    async with console.backtesting:
        return await asyncio.to_thread(work)


FILTERS = {
    "amount": amount,
    "moment": moment,
    "quoted": quoted,
    "when": _day_text,
    "ago": _ago,
    "hs": hs_display,
}
GLOBALS = {
    "SEVERITIES": [s.value for s in sorted(Severity, key=lambda s: -s.rank)],
    "STATES": list(CaseState),
    "OUTCOMES": list(Outcome),
    "SORTS": SORTS,
    "MATCH_KEYS": MATCH_KEYS,
}
