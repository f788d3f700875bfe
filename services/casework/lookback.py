"""Lookbacks: when a sanctions list changes, the archive's parties screened against what is new.

A lookback compares each list in force with the list as the last lookback saw it (its baseline
in the store of record: the version and a fingerprint of each entry), and screens the parties of
every archived report whose event time is within the window (``TRADEWATCH_LOOKBACK_WINDOW``, one
year; or ``since``) against the entries that are new or changed: the importer, the exporter, the
names in the text and the vessels, as the rules stage screens a report
(:class:`services.sanctions.matcher.PartyScreen`), a match kept at ``min_score`` (0.9, the shipped
``un-listed-party`` rule's) unless a reviewed exception holds for it.

Only new hits count: a match whose entry (its reference) a finding of the report's case already
names (a live ``party:`` alert, an earlier lookback) is left out. Each report with a new hit gets
one alert per list version: rule ``sanctions-lookback``, tag ``lookback``, critical, its evidence
naming each match, the list and its version, and the original report's dates. The alerts are written through :func:`services.casework.records.record_alerts`,
the records stage's own path, so they become cases (one per report, a finding added where the
report has a case already) and an alert id recorded before is skipped: a lookback run twice, or by
two processes at once, records each hit once. They are recorded, not notified.

A list the lookbacks have not seen before (no baseline: the first list loaded, another list added
later) is new in every entry: the archive is screened against all of it (a report the rules stage
already caught keeps its finding, and gets no lookback for it). ``everything=True`` screens the
archive against every entry of every list, new or not.

The archive stage runs a lookback whenever a list's version differs from its baseline (it looks
every ``LOOKBACK_CHECK`` seconds); ``tradewatch sanctions lookback`` runs one by hand.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from schemas.alert import Alert, Severity, alert_id_for
from schemas.report import ImportReport
from services.casework.records import record_alerts
from services.sanctions.index import Exceptions, ScreeningIndex
from services.sanctions.lists import ListedEntry
from services.sanctions.matcher import PartyMatch, PartyScreen
from services.sanctions.store import SanctionsStore
from services.store import Store
from services.store import archive as reports
from services.store.models import Case, Finding, LookbackBaseline

LOOKBACK_RULE = "sanctions-lookback"
LOOKBACK_TAG = "lookback"
LOOKBACK_ACTOR = "lookback"
MIN_SCORE = 0.9
LOOKBACK_CHECK = 60.0
"""Seconds between two looks of the archive stage at the lists' versions."""
LEGAL_BASIS = (
    "UNSCR 1718 (2006) paragraph 8(d) (asset freeze on designated persons and entities); "
    "Wolfsberg Group sanctions screening guidance: lookbacks when a list changes"
)

Lists = Mapping[str, tuple[str, Sequence[ListedEntry]]]
"""List name -> (version in force, its entries)."""


def fingerprint(entry: ListedEntry) -> str:
    return hashlib.sha256(entry.model_dump_json().encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ListChange:
    list_name: str
    previous: str | None
    current: str
    new: int
    changed: int


@dataclass(frozen=True, slots=True)
class LookbackHit:
    report_id: str
    event_at: str
    list_name: str
    list_version: str
    reference: str
    name: str
    role: str
    query: str
    matched_alias: str
    score: float
    alert_id: str


@dataclass
class Lookback:
    since: str
    lists: list[ListChange] = field(default_factory=list)
    entries: int = 0
    """New or changed entries screened against."""
    reports: int = 0
    """Archived reports screened."""
    hits: list[LookbackHit] = field(default_factory=list)
    """New hits (recorded now or by an earlier run of the same list version)."""
    known: int = 0
    """Matches left out: a finding of the report's case names that entry already."""
    cases_opened: int = 0
    findings_added: int = 0
    repeated: int = 0
    """Hits recorded before (an earlier run): nothing written."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def read_lists(sanctions: SanctionsStore) -> dict[str, tuple[str, list[ListedEntry]]]:
    """The lists in force in Redis, each with its version and entries."""
    out: dict[str, tuple[str, list[ListedEntry]]] = {}
    for name, version in sorted((await sanctions.pointers()).items()):
        raw = await sanctions.redis.hvals(sanctions.entries_key(name, version))
        out[name] = (version, [ListedEntry.model_validate_json(r) for r in raw])
    return out


async def baselines(store: Store) -> dict[str, str]:
    """List name -> the version the last lookback saw."""
    async with store.reading() as session:
        rows = (await session.scalars(select(LookbackBaseline))).all()
    return {r.list_name: r.version for r in rows}


def _alert(report: ImportReport, list_name: str, version: str, previous: str | None,
           matches: list[PartyMatch], event_at: datetime, received_at: datetime, now: datetime) -> Alert:  # fmt: skip
    evidence = [f"{p.evidence()} (new or changed in list {list_name} version {version})" for p in matches]
    evidence.append(
        f"lookback: report of {event_at.date().isoformat()} (received {received_at.date().isoformat()}) "
        f"screened again when list {list_name} changed from {previous or 'no version'} to {version}"
    )
    names = ", ".join(sorted({p.match.entry.name for p in matches}))
    return Alert(
        alert_id=alert_id_for(report.report_id, LOOKBACK_RULE, f"{list_name}:{version}"),
        rule_id=LOOKBACK_RULE,
        rule_version=version,
        severity=Severity.CRITICAL,
        report_id=report.report_id,
        title="Lookback: a party of an archived report is on a sanctions list's new or changed entries",
        summary=f"{names} (list {list_name} {version})",
        evidence=evidence,
        legal_basis=LEGAL_BASIS,
        tags=[LOOKBACK_TAG, "sanctions-list", "party"],
        created_at=now,
        source=report.source,
        crossing=report.crossing,
        origin_country=report.origin_country,
        destination_country=report.destination_country,
        importer=report.importer,
        exporter=report.exporter,
        reported_at=report.reported_at,
        url=report.url,
        dedup_key=f"{LOOKBACK_RULE}|{report.report_id}",
        group_key=report.report_id,
    )


async def lookback(
    store: Store,
    lists: Lists,
    since: datetime,
    due: Mapping[Severity, float],
    *,
    min_score: float = MIN_SCORE,
    exceptions: Exceptions | None = None,
    everything: bool = False,
    candidates: int = 25,
    now: datetime | None = None,
) -> Lookback:
    """Screen the archive (event time from ``since``) against each list's new and changed entries;
    record the hits as cases and each list's baseline. See the module's notes."""
    now = now or datetime.now(UTC)
    result = Lookback(since=since.isoformat())
    async with store.reading() as session:
        known = {r.list_name: r for r in (await session.scalars(select(LookbackBaseline))).all()}
    indexes: list[tuple[str, str, str | None, ScreeningIndex]] = []
    for name, (version, entries) in sorted(lists.items()):
        base = known.get(name)
        before: dict[str, str] = json.loads(base.fingerprints) if base is not None else {}
        fresh = [e for e in entries if e.id not in before]
        changed = [e for e in entries if e.id in before and before[e.id] != fingerprint(e)]
        result.lists.append(
            ListChange(name, base.version if base else None, version, len(fresh), len(changed))
        )
        wanted = list(entries) if everything else [*fresh, *changed]
        if wanted:
            index = ScreeningIndex.build(wanted, f"{name}:{version}", candidates)
            if exceptions is not None:
                index.exceptions = exceptions
            indexes.append((name, version, base.version if base else None, index))
            result.entries += len(wanted)
    held: list[tuple[ImportReport, datetime, datetime, str, str, str | None, list[PartyMatch]]] = []
    if indexes:
        async with store.reading() as session:
            async for row in reports.stream(session, reports.Filter(since=since)):
                result.reports += 1
                report = ImportReport.model_validate_json(row.report)
                for name, version, previous, index in indexes:
                    found = [
                        p
                        for p in PartyScreen(index, report, now).found()
                        if p.skipped is None and p.match.score >= min_score
                    ]
                    if found:
                        held.append((report, row.event_at, row.received_at, name, version, previous, found))
    in_cases = await _findings_text(store, sorted({h[0].report_id for h in held}))
    alerts: list[Alert] = []
    for report, event_at, received_at, name, version, previous, found in held:
        text = in_cases.get(report.report_id, "")
        # A match already named by a finding of the report's case other than this very alert (a
        # live party alert, a lookback of another version) is not a new hit.
        alert_id = alert_id_for(report.report_id, LOOKBACK_RULE, f"{name}:{version}")
        new_hits = [p for p in found if not _names(text, p.match.entry.reference, alert_id)]
        result.known += len(found) - len(new_hits)
        if not new_hits:
            continue
        alert = _alert(report, name, version, previous, new_hits, event_at, received_at, now)
        alerts.append(alert)
        for p in new_hits:
            result.hits.append(
                LookbackHit(
                    report.report_id, event_at.isoformat(), name, version,
                    p.match.entry.reference, p.match.entry.name, p.role, p.match.query,
                    p.match.matched_alias, round(p.match.score, 3), alert.alert_id,
                )
            )  # fmt: skip
    async with store.writing() as session:
        done = await record_alerts(session, alerts, due, LOOKBACK_ACTOR)
        for name, (version, entries) in lists.items():
            prints = json.dumps({e.id: fingerprint(e) for e in entries}, sort_keys=True)
            baseline = await session.get(LookbackBaseline, name)
            if baseline is None:
                session.add(
                    LookbackBaseline(list_name=name, version=version, fingerprints=prints, updated_at=now)
                )
            else:
                baseline.version, baseline.fingerprints, baseline.updated_at = version, prints, now
    result.cases_opened, result.findings_added, result.repeated = done.opened, done.attached, done.repeated
    return result


async def _findings_text(store: Store, report_ids: Sequence[str]) -> dict[str, str]:
    """Report id -> its case's findings (the alerts as JSON, one per line), for the reports given."""
    out: dict[str, list[str]] = {}
    async with store.reading() as session:
        for start in range(0, len(report_ids), 500):
            chunk = report_ids[start : start + 500]
            query = select(Case.report_id, Finding.alert).join(Finding).where(Case.report_id.in_(chunk))
            for report_id, alert in (await session.execute(query)).all():
                out.setdefault(report_id, []).append(alert)
    return {k: "\n".join(v) for k, v in out.items()}


def _names(text: str, reference: str, alert_id: str) -> bool:
    """The findings name this entry reference (as a whole token), in alerts other than ``alert_id``."""
    lines = [line for line in text.splitlines() if alert_id not in line]
    pattern = re.compile(rf"(?<![\w.]){re.escape(reference)}(?!\w)")
    return any(pattern.search(line) for line in lines)


def window_start(window: float, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(seconds=window)


def render(result: Lookback) -> str:
    lines = []
    for c in result.lists:
        if c.previous is None:
            lines.append(f"{c.list_name} {c.current}: first lookback of this list, every entry new")
        elif c.previous == c.current and not (c.new or c.changed):
            lines.append(f"{c.list_name} {c.current}: unchanged since the last lookback")
        else:
            lines.append(
                f"{c.list_name} {c.previous or '(none)'} -> {c.current}: {c.new} new, {c.changed} changed entries"
            )
    if not result.lists:
        lines.append("no sanctions lists loaded: nothing to look back with")
    lines.append(
        f"{result.reports} archived report(s) since {result.since[:10]} screened against "
        f"{result.entries} new or changed entries: {len(result.hits)} new hit(s), "
        f"{result.known} match(es) already in their cases"
    )
    for h in result.hits:
        lines.append(
            f'  {h.report_id} ({h.event_at[:10]}): {h.role} "{h.query}" = {h.reference} {h.name} '
            f'(alias "{h.matched_alias}", score {h.score:.2f}), list {h.list_name} {h.list_version}'
        )
    lines.append(
        f"cases opened: {result.cases_opened}, findings added to cases: {result.findings_added}, "
        f"recorded before: {result.repeated}"
    )
    return "\n".join(lines)
