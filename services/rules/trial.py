"""``tradewatch rules test``: reports through exactly the production engine, without the pipeline.

Each report is explained by ``engine.explain`` (the function the rules stage calls); rules over
time get their state from :class:`MemoryState`, which keeps the same contract as the Redis
scripts, with each report replayed at its ``reported_at`` (or at ``now`` when it has none).
The result is shown for people (why each alert fires, what an exception suppressed) or as one
JSON line per report, which a golden file can pin down for a rule author's CI.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from schemas.alert import Alert, Severity
from schemas.base import StrictModel
from schemas.report import ImportReport
from services.rules.engine import RuleSet, Verdict, explain
from services.rules.temporal import DEFAULT_HORIZON, Decision, MemoryState, Pending, is_backfill, settle
from services.wire import aware, describe_validation, event_time
from services.yamlfile import ConfigError, Problem


class TrialItem(StrictModel):
    index: int
    hs_code: str | None
    categories: list[str]


class TrialAlert(StrictModel):
    rule_id: str
    severity: Severity
    tags: list[str]
    matched_items: list[TrialItem]


class TrialLine(StrictModel):
    """One report's result as ``rules test --json`` prints it and ``--expect`` reads it."""

    report_id: str
    alerts: list[TrialAlert]


@dataclass(frozen=True)
class ReportTrial:
    report: ImportReport
    verdicts: list[Verdict]
    fired: list[Alert]
    waiting: list[tuple[Pending, Decision]]
    """Rules over time that held but whose state said not yet."""

    def line(self) -> TrialLine:
        return TrialLine(
            report_id=self.report.report_id,
            alerts=[
                TrialAlert(
                    rule_id=a.rule_id,
                    severity=a.severity,
                    tags=list(a.tags),
                    matched_items=[
                        TrialItem(index=m.index, hs_code=m.hs_code, categories=list(m.categories))
                        for m in a.matched_items
                    ],
                )
                for a in self.fired
            ],
        )


def run(
    reports: Sequence[ImportReport],
    ruleset: RuleSet,
    now: datetime,
    *,
    horizon: float = DEFAULT_HORIZON,
    received: Sequence[datetime] | None = None,
    state: MemoryState | None = None,
) -> list[ReportTrial]:
    """Each report in the order given, as the rules stage would take it: rules over time count it
    at its event time (``wire.event_time``), ``received`` (default: ``now`` for each) tells a
    backfill, as the stage tells it from the stream entry's time."""
    state = state if state is not None else MemoryState(horizon)
    trials = []
    for n, report in enumerate(reports):
        got = aware(received[n]) if received is not None else now
        at = event_time(report, got)
        backfill = is_backfill(at, got, horizon)
        verdicts = explain(report, ruleset, at)
        fired: list[Alert] = []
        waiting: list[tuple[Pending, Decision]] = []
        for verdict in verdicts:
            if verdict.pending is not None:
                decision = state.decide(verdict.pending, at, got)
                alert = settle(verdict.pending, decision, backfill)
                if alert is None:
                    waiting.append((verdict.pending, decision))
                else:
                    fired.append(alert)
            elif verdict.alert is not None:
                fired.append(verdict.alert)
        trials.append(ReportTrial(report, verdicts, fired, waiting))
    return trials


def read_reports(path: Path) -> list[ImportReport]:
    """Every report of a JSONL file, or a ConfigError naming each bad line."""
    reports: list[ImportReport] = []
    problems: list[Problem] = []
    for number, text in _lines(path):
        try:
            reports.append(ImportReport.model_validate_json(text))
        except ValidationError as error:
            problems.append(Problem(str(path), number, f"not a valid report: {describe_validation(error)}"))
    if problems:
        raise ConfigError(problems)
    return reports


def read_expected(path: Path) -> list[TrialLine]:
    lines: list[TrialLine] = []
    problems: list[Problem] = []
    for number, text in _lines(path):
        try:
            lines.append(TrialLine.model_validate_json(text))
        except ValidationError as error:
            problems.append(
                Problem(str(path), number, f"not a valid expected line: {describe_validation(error)}")
            )
    if problems:
        raise ConfigError(problems)
    return lines


def _lines(path: Path) -> list[tuple[int, str]]:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), None, "no such file")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([Problem(str(path), None, f"cannot be read: {error}")]) from None
    return [(n, line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]


def _items(alert: TrialAlert) -> str:
    shown = [f"#{m.index} HS {m.hs_code or '?'} [{', '.join(m.categories)}]" for m in alert.matched_items]
    return "; ".join(shown) or "no items"


def differences(actual: Sequence[TrialLine], expected: Sequence[TrialLine]) -> list[str]:
    """What differs, one plain sentence each; empty when the result is as expected."""
    got = {line.report_id: line for line in actual}
    want = {line.report_id: line for line in expected}
    found: list[str] = []
    for report_id in want.keys() - got.keys():
        found.append(f"{report_id}: in the expected file but not among the reports")
    for report_id in got.keys() - want.keys():
        fires = ", ".join(a.rule_id for a in got[report_id].alerts) or "nothing"
        found.append(f"{report_id}: not in the expected file (fires: {fires})")
    for report_id in [r for r in got if r in want]:
        mine = {a.rule_id: a for a in got[report_id].alerts}
        theirs = {a.rule_id: a for a in want[report_id].alerts}
        for rule_id in theirs.keys() - mine.keys():
            found.append(f"{report_id}: rule {rule_id} was expected to fire and does not")
        for rule_id in mine.keys() - theirs.keys():
            a = mine[rule_id]
            found.append(
                f"{report_id}: rule {rule_id} fires ({a.severity.value}, {_items(a)}) but was not expected"
            )
        for rule_id in [r for r in mine if r in theirs]:
            a, e = mine[rule_id], theirs[rule_id]
            if a.severity != e.severity:
                found.append(
                    f"{report_id}: rule {rule_id} is {a.severity.value}, expected {e.severity.value}"
                )
            if a.tags != e.tags:
                found.append(f"{report_id}: rule {rule_id} has tags {a.tags}, expected {e.tags}")
            if a.matched_items != e.matched_items:
                found.append(f"{report_id}: rule {rule_id} matched {_items(a)}; expected {_items(e)}")
    return sorted(found)


def render(trial: ReportTrial) -> str:
    """Why each alert fires, what was suppressed and what waits on state, for a person."""
    report = trial.report
    lines = [f"{report.report_id}: {len(trial.fired)} alert(s)"]
    for alert in trial.fired:
        lines.append(f"  FIRES {alert.rule_id} [{alert.severity.value}] {alert.title}")
        lines.append(f"    legal basis: {alert.legal_basis}")
        if alert.tags:
            lines.append(f"    tags: {', '.join(alert.tags)}")
        if alert.backfill:
            lines.append("    backfill: recorded as a case, not notified")
        for reason in alert.evidence:
            lines.append(f"    because {reason}")
        for m in alert.matched_items:
            cats = ", ".join(m.categories) or "no category"
            lines.append(
                f"    item #{m.index} {json.dumps(m.description, ensure_ascii=False)} HS {m.hs_code or '?'} ({cats})"
            )
            lines += [f"      - {e}" for e in m.evidence]
    for verdict in trial.verdicts:
        if verdict.suppressed_by is not None:
            lines.append(f"  SUPPRESSED {verdict.rule_id} by {verdict.suppressed_by}")
    for pending, decision in trial.waiting:
        if pending.kind == "frequency":
            lines.append(f"  WAITS {pending.rule_id}: {decision.count} so far; {pending.describe()}")
        else:
            lines.append(
                f"  WAITS {pending.rule_id}: {pending.group} already seen ({', '.join(pending.terms)})"
            )
    if len(lines) == 1:
        lines.append("  no rule fires")
    return "\n".join(lines)


def dump(lines: Sequence[TrialLine]) -> str:
    return "".join(json.dumps(line.model_dump(mode="json"), ensure_ascii=False) + "\n" for line in lines)
