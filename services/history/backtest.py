"""Backtests: archived reports replayed through the live rule set and a proposed one, the difference.

Both rule sets run in the production engine (``services.rules.engine.explain``), each report
evaluated as of its own event time, rules over time decided by :class:`MemoryState` in event-time
order (see ``services/rules/temporal.py``: a backtest replays as if every report had arrived at its
own time; a report whose real arrival was past the backfill horizon still makes backfill alerts).

Parallel processes, split by what needs order: the engine's work (classifying items, testing
every rule, building explained alerts) is per report and runs in ``workers`` processes over
chunks of the archive, read in event-time order; what a rule over time leaves to decide comes
back as a small pending record (the rule, the group or terms, the severity its alert would have)
and one ordered pass in the calling process applies the state, chunk after chunk as the results
come back in order. Party conditions (``party:``) are screened against the sanctions lists given
(``screening``: the command line passes the lists in force, with the reviewed exceptions); without
them they never hold. Each report is screened against today's lists: to see what a list change
means for the archive, ``tradewatch sanctions lookback``.

:func:`backtest` is the core (the command line and the console call it); its result has
``as_dict()``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from schemas.alert import Alert, Severity
from schemas.report import ImportReport
from services.rules.engine import RuleSet, compile_rules, explain
from services.rules.loader import load_ruleset
from services.rules.temporal import DEFAULT_HORIZON, MemoryState, Pending, is_backfill
from services.sanctions.index import ScreeningIndex
from services.store import Store
from services.store import archive as reports

CHUNK = 500
"""Reports per task sent to a worker process."""
EXAMPLES = 10
"""Changes kept as examples, per kind."""


@dataclass(frozen=True)
class RuleFiles:
    """A rule set as files (a worker process loads it itself: a compiled rule set does not travel)."""

    rules: tuple[Path, ...]
    catalog: Path
    rates: Path
    exceptions: tuple[Path, ...] = ()

    def load(self) -> RuleSet:
        return load_ruleset(self.rules, self.catalog, self.rates, self.exceptions)

    @classmethod
    @contextmanager
    def from_text(cls, text: str, like: RuleFiles) -> Iterator[RuleFiles]:
        """A rule file pasted or uploaded (YAML text), with ``like``'s catalog, rates and
        exceptions, for as long as the block runs (a temporary file: workers load it by path)."""
        with tempfile.TemporaryDirectory(prefix="tradewatch-backtest-") as folder:
            path = Path(folder) / "proposed.yaml"
            path.write_text(text, encoding="utf-8")
            yield cls((path,), like.catalog, like.rates, like.exceptions)


# What a worker returns per report: fixed alerts ("a", rule, severity) and pending ones
# ("p", rule, severity if it fires, kind, group, terms, count, window).
Fixed = tuple[Literal["a"], str, str]
Held = tuple[Literal["p"], str, str, Literal["frequency", "new_term"], str, tuple[str, ...], int, float]
Outcome = tuple[str, int, int, list[Fixed | Held], list[Fixed | Held]]
"""(report id, event ms, arrival ms, live, proposed)."""

Row = tuple[str, int, int]
"""(report JSON, event ms, arrival ms)."""


@dataclass
class _Loaded:
    files: tuple[RuleFiles, RuleFiles]
    live: RuleSet
    proposed: RuleSet
    """The whole proposed rule set (its version, its rules)."""
    changed: RuleSet | None
    """The proposed rules that differ from the live ones, compiled over the live set's catalog and
    rates (None: the catalog or rates differ too, so every proposed rule is evaluated)."""
    unchanged: frozenset[str]
    """Rule ids whose live verdicts are the proposed ones (same rule, same version)."""
    screening: ScreeningIndex | None = None


_loaded: list[_Loaded] = []
"""The rule sets of this process (a worker loads them once, or inherits them on a fork)."""


def _init(live: RuleFiles, proposed: RuleFiles, screening: ScreeningIndex | None = None) -> _Loaded:
    if _loaded and _loaded[0].files == (live, proposed) and _loaded[0].screening is screening:
        return _loaded[0]
    a = live.load()
    b = a if proposed == live else proposed.load()
    changed: RuleSet | None = None
    unchanged: frozenset[str] = frozenset()
    if (
        b.catalog.version == a.catalog.version
        and b.rates.rates == a.rates.rates
        and b.rates.base == a.rates.base
    ):
        # Only what differs is evaluated again, over the live set's catalog (whose memo of item
        # descriptions then serves both): a change to one rule costs one rule, not a rule set.
        versions = {c.rule.id: c.version for c in a.rules}
        unchanged = frozenset(c.rule.id for c in b.rules if versions.get(c.rule.id) == c.version)
        changed = compile_rules([c.rule for c in b.rules if c.rule.id not in unchanged], a.catalog, a.rates)
    loaded = _Loaded((live, proposed), a, b, changed, unchanged, screening)
    _loaded[:] = [loaded]
    return loaded


def _ready() -> bool:
    time.sleep(0.05)  # long enough for every worker to be started, one task each
    return bool(_loaded)


def _verdicts(
    report: ImportReport, ruleset: RuleSet, at: datetime, screening: ScreeningIndex | None
) -> list[Fixed | Held]:
    out: list[Fixed | Held] = []
    for v in explain(report, ruleset, at, screening):
        if v.alert is not None:
            out.append(("a", v.rule_id, v.alert.severity.value))
        elif v.pending is not None:
            p = v.pending
            severity = p.build([]).severity.value
            out.append(("p", p.rule_id, severity, p.kind, p.group, p.terms, p.count, p.window))
    return out


def evaluate_chunk(rows: Sequence[Row]) -> list[Outcome]:
    """The engine's part, for one chunk, in a worker (or in the calling process)."""
    loaded = _loaded[0]
    out: list[Outcome] = []
    for raw, event_ms, arrived_ms in rows:
        report = ImportReport.model_validate_json(raw)
        at = datetime.fromtimestamp(event_ms / 1000, UTC)
        mine = _verdicts(report, loaded.live, at, loaded.screening)
        if loaded.changed is None:
            theirs = _verdicts(report, loaded.proposed, at, loaded.screening)
        else:
            theirs = [v for v in mine if v[1] in loaded.unchanged]
            if loaded.changed.rules:
                theirs += _verdicts(report, loaded.changed, at, loaded.screening)
        out.append((report.report_id, event_ms, arrived_ms, mine, theirs))
    return out


@dataclass(frozen=True, slots=True)
class Change:
    """An alert that appears, disappears or changes severity with the proposed rules."""

    kind: Literal["appears", "disappears", "severity"]
    report_id: str
    rule_id: str
    event_at: str
    live_severity: str | None
    proposed_severity: str | None
    backfill: bool = False


@dataclass(frozen=True, slots=True)
class RuleCount:
    rule_id: str
    live: int
    proposed: int


@dataclass
class Backtest:
    """What the proposed rules would have changed over the archived reports."""

    since: str | None
    until: str | None
    reports: int
    workers: int
    seconds: float
    live_version: str
    proposed_version: str
    screened_against: str | None = None
    """The sanctions lists party conditions were screened against (None: not screened)."""
    alerts_live: int = 0
    alerts_proposed: int = 0
    cases_live: int = 0
    cases_proposed: int = 0
    alerts_appear: int = 0
    alerts_disappear: int = 0
    alerts_severity_changed: int = 0
    cases_appear: int = 0
    cases_disappear: int = 0
    cases_severity_changed: int = 0
    backfill_live: int = 0
    backfill_proposed: int = 0
    per_rule: list[RuleCount] = field(default_factory=list)
    examples: list[Change] = field(default_factory=list)
    case_examples: list[Change] = field(default_factory=list)

    @property
    def reports_per_second(self) -> float:
        return self.reports / self.seconds if self.seconds > 0 else 0.0

    @property
    def changed(self) -> bool:
        return bool(self.alerts_appear or self.alerts_disappear or self.alerts_severity_changed)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reports_per_second"] = round(self.reports_per_second, 1)
        out["seconds"] = round(self.seconds, 3)
        return out


class _Side:
    """One rule set's alerts over the replay: the state of its rules over time, what fired."""

    def __init__(self, horizon: float) -> None:
        self.state = MemoryState(horizon)
        self.horizon = horizon
        self.alerts: dict[tuple[str, str], tuple[str, bool]] = {}
        """(report id, rule id) -> (severity, backfill)."""

    def apply(self, report_id: str, event_ms: int, arrived_ms: int, verdicts: list[Fixed | Held]) -> None:
        at = datetime.fromtimestamp(event_ms / 1000, UTC)
        arrived = datetime.fromtimestamp(arrived_ms / 1000, UTC)
        backfill = is_backfill(at, arrived, self.horizon)
        for v in verdicts:
            if v[0] == "a":
                self.alerts[(report_id, v[1])] = (v[2], False)
                continue
            _, rule_id, severity, kind, group, terms, count, window = v
            pending = Pending(kind, rule_id, report_id, _unbuilt, group, terms, count, window)
            # As if it had arrived at its own time: the replay is in event-time order.
            if self.state.decide(pending, at).fire:
                self.alerts[(report_id, rule_id)] = (severity, backfill)


def _unbuilt(_: Sequence[str]) -> Alert:
    raise AssertionError("a backtest never builds an alert of a rule over time")


def _cases(alerts: dict[tuple[str, str], tuple[str, bool]]) -> dict[str, str]:
    worst: dict[str, str] = {}
    for (report_id, _), (severity, _) in alerts.items():
        if report_id not in worst or Severity(severity).rank > Severity(worst[report_id]).rank:
            worst[report_id] = severity
    return worst


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _compare(result: Backtest, live: _Side, proposed: _Side, event_of: dict[str, int]) -> None:
    a, b = live.alerts, proposed.alerts
    result.alerts_live, result.alerts_proposed = len(a), len(b)
    result.backfill_live = sum(1 for _, bf in a.values() if bf)
    result.backfill_proposed = sum(1 for _, bf in b.values() if bf)
    changes: list[Change] = []
    for key in sorted(a.keys() | b.keys(), key=lambda k: (event_of[k[0]], k)):
        before, after = a.get(key), b.get(key)
        if before == after or (before and after and before[0] == after[0]):
            continue
        kind: Literal["appears", "disappears", "severity"] = (
            "appears" if before is None else "disappears" if after is None else "severity"
        )
        changes.append(
            Change(
                kind, key[0], key[1], _iso(event_of[key[0]]),
                before[0] if before else None, after[0] if after else None,
                bool((after or before or ("", False))[1]),
            )
        )  # fmt: skip
    kinds = Counter(c.kind for c in changes)
    result.alerts_appear, result.alerts_disappear = kinds["appears"], kinds["disappears"]
    result.alerts_severity_changed = kinds["severity"]
    per_kind: Counter[str] = Counter()
    kept: list[Change] = []
    for c in changes:
        if per_kind[c.kind] < EXAMPLES:
            per_kind[c.kind] += 1
            kept.append(c)
    result.examples = kept
    rules_live = Counter(rule for _, rule in a)
    rules_proposed = Counter(rule for _, rule in b)
    result.per_rule = [
        RuleCount(rule, rules_live[rule], rules_proposed[rule])
        for rule in sorted(rules_live.keys() | rules_proposed.keys())
    ]
    ca, cb = _cases(a), _cases(b)
    result.cases_live, result.cases_proposed = len(ca), len(cb)
    case_changes: list[Change] = []
    for report_id in sorted(ca.keys() | cb.keys(), key=lambda r: (event_of[r], r)):
        x, y = ca.get(report_id), cb.get(report_id)
        if x == y:
            continue
        kind = "appears" if x is None else "disappears" if y is None else "severity"
        case_changes.append(Change(kind, report_id, "", _iso(event_of[report_id]), x, y))
    case_kinds = Counter(c.kind for c in case_changes)
    result.cases_appear, result.cases_disappear = case_kinds["appears"], case_kinds["disappears"]
    result.cases_severity_changed = case_kinds["severity"]
    per_kind.clear()
    for c in case_changes:
        if per_kind[c.kind] < EXAMPLES:
            per_kind[c.kind] += 1
            result.case_examples.append(c)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


async def backtest(
    store: Store,
    live_rules: RuleFiles,
    proposed_rules: RuleFiles,
    since: datetime | None = None,
    until: datetime | None = None,
    workers: int = 2,
    *,
    horizon: float = DEFAULT_HORIZON,
    chunk: int = CHUNK,
    screening: ScreeningIndex | None = None,
    start_method: str | None = None,
) -> Backtest:
    """Replay the archived reports with event time in ``[since, until)`` through both rule sets.

    ``workers``: processes for the engine's part (1: in this process). ``screening``: the sanctions
    lists for ``party:`` conditions (see :func:`services.sanctions.store.ScreeningCache`; None: they
    never hold). ``start_method``: how worker processes start (default ``fork`` where the platform
    has it: they inherit the loaded rule sets; ``spawn`` from a process with threads of its own, a
    web server, at the cost of each worker loading them). Raises the loader's ``ConfigError`` for
    a bad rule file before any report is read.
    """
    started = time.perf_counter()
    loaded = _init(live_rules, proposed_rules, screening)  # checks both (a ConfigError); serves workers=1
    result = Backtest(
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        reports=0,
        workers=max(1, workers),
        seconds=0.0,
        live_version=loaded.live.version,
        proposed_version=loaded.proposed.version,
        screened_against=(screening.version or "lists given")
        if screening is not None and len(screening)
        else None,
    )
    live, proposed = _Side(horizon), _Side(horizon)
    event_of: dict[str, int] = {}

    def take(outcomes: list[Outcome]) -> None:
        for report_id, event_ms, arrived_ms, mine, theirs in outcomes:
            event_of[report_id] = event_ms
            live.apply(report_id, event_ms, arrived_ms, mine)
            proposed.apply(report_id, event_ms, arrived_ms, theirs)
        result.reports += len(outcomes)

    loop = asyncio.get_running_loop()
    pool: Executor | None = None
    if workers > 1:
        # Forked where the platform can (the workers inherit the loaded rule sets: no import, no
        # load), and before the archive is opened: the workers run pure code only.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context(start_method or ("fork" if "fork" in methods else "spawn"))
        pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init, initargs=(live_rules, proposed_rules, screening)
        )
        await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(workers)))
    in_flight: list[asyncio.Future[list[Outcome]]] = []
    try:
        batch: list[Row] = []

        async def send(rows: list[Row]) -> None:
            if pool is None:
                take(evaluate_chunk(rows))
                return
            in_flight.append(loop.run_in_executor(pool, evaluate_chunk, rows))
            # Results are applied in order; a few chunks ahead keep every worker busy.
            while len(in_flight) > 2 * workers:
                take(await in_flight.pop(0))

        async with store.reading() as session:
            where = reports.Filter(since=since, until=until)
            async for row in reports.stream(session, where):
                batch.append((row.report, _ms(row.event_at), _ms(row.received_at)))
                if len(batch) >= chunk:
                    await send(batch)
                    batch = []
        if batch:
            await send(batch)
        while in_flight:
            take(await in_flight.pop(0))
    finally:
        for pending in in_flight:
            pending.cancel()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    _compare(result, live, proposed, event_of)
    result.seconds = time.perf_counter() - started
    return result


def render(result: Backtest) -> str:
    """The difference for a person."""
    lines = [
        f"backtest of {result.reports} archived report(s)"
        + (f" from {result.since}" if result.since else "")
        + (f" until {result.until}" if result.until else "")
        + f": live rules {result.live_version}, proposed {result.proposed_version}",
        f"  alerts: {result.alerts_live} live, {result.alerts_proposed} proposed: "
        f"{result.alerts_appear} appear, {result.alerts_disappear} disappear, "
        f"{result.alerts_severity_changed} change severity",
        f"  cases:  {result.cases_live} live, {result.cases_proposed} proposed: "
        f"{result.cases_appear} appear, {result.cases_disappear} disappear, "
        f"{result.cases_severity_changed} change severity",
    ]
    lines.append(
        f"  party conditions screened against {result.screened_against}"
        if result.screened_against
        else "  party conditions not screened: no sanctions lists loaded"
    )
    if result.backfill_live or result.backfill_proposed:
        lines.append(
            f"  backfill alerts (recorded, not notified): {result.backfill_live} live, "
            f"{result.backfill_proposed} proposed"
        )
    lines.append("  per rule (live -> proposed):")
    for r in result.per_rule:
        mark = "" if r.live == r.proposed else f"  ({r.proposed - r.live:+d})"
        lines.append(f"    {r.rule_id}: {r.live} -> {r.proposed}{mark}")
    if result.examples:
        lines.append("  examples:")
        for c in result.examples:
            severity = {
                "appears": f"appears ({c.proposed_severity})",
                "disappears": f"disappears (was {c.live_severity})",
                "severity": f"{c.live_severity} -> {c.proposed_severity}",
            }[c.kind]
            bf = " [backfill]" if c.backfill else ""
            lines.append(f"    {c.report_id} ({c.event_at[:10]}) {c.rule_id}: {severity}{bf}")
    if not result.changed:
        lines.append("  no difference")
    lines.append(
        f"  {result.reports} reports in {result.seconds:.2f}s with {result.workers} process(es): "
        f"{result.reports_per_second:,.0f} reports/s"
    )
    return "\n".join(lines)
