"""Alerts into cases: what the records stage writes, idempotently by alert id.

One case per report, as the notifier presents it (:mod:`services.cases`). An alert id already
recorded is skipped, so a redelivered alert (a crash after the commit, before the ack) changes
nothing. A report's first alerts open its case (``case.opened``); later ones attach to it
(``case.findings_added``), raising its severity and bringing its due date forward when they are
worse; alerts for a closed case attach to it and are counted as arrived after the close, and
the case stays closed: reopening is a person's decision.

Call :func:`record_alerts` inside :meth:`Store.writing`: the transaction holds the audit chain's
lock, so two records workers never open the same report's case twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import overload

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.alert import Alert, Severity
from services import cases as caseview
from services.store import audit
from services.store.models import Case, CaseState, Finding

RECORDS_ACTOR = "records"
"""The audit trail's actor for what the records stage writes."""

_CHUNK = 500


@dataclass
class Recorded:
    """What one batch changed."""

    opened: int = 0
    """Cases opened."""
    attached: int = 0
    """Findings added to cases that existed."""
    after_close: int = 0
    """Findings added to closed cases (or cases awaiting approval)."""
    repeated: int = 0
    """Alerts recorded before (a redelivery): nothing written."""


async def _known(session: AsyncSession, alert_ids: Sequence[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(alert_ids), _CHUNK):
        chunk = alert_ids[start : start + _CHUNK]
        known.update(
            (await session.scalars(select(Finding.alert_id).where(Finding.alert_id.in_(chunk)))).all()
        )
    return known


@overload
def _aware(when: datetime) -> datetime: ...
@overload
def _aware(when: None) -> None: ...
def _aware(when: datetime | None) -> datetime | None:
    """A time as the store keeps it: an alert's time without a zone is taken as UTC."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


def joined_categories(categories: Sequence[str]) -> str:
    """Categories as a finding keeps them (``|a|b|``), or ``""`` for none."""
    return "|" + "|".join(sorted(set(categories))) + "|" if categories else ""


def _finding(case_id: int, alert: Alert, now: datetime, after_close: bool) -> Finding:
    return Finding(
        case_id=case_id,
        alert_id=alert.alert_id,
        rule_id=alert.rule_id,
        rule_version=alert.rule_version,
        severity=alert.severity.value,
        title=alert.title,
        created_at=_aware(alert.created_at),
        recorded_at=now,
        after_close=after_close,
        alert=alert.model_dump_json(exclude_none=True),
        categories=joined_categories([c for item in alert.matched_items for c in item.categories]),
    )


async def record_alerts(
    session: AsyncSession, alerts: Sequence[Alert], due: Mapping[Severity, float], actor: str = RECORDS_ACTOR
) -> Recorded:
    """Write these alerts into their reports' cases; alerts recorded before are skipped."""
    done = Recorded()
    unique = list({a.alert_id: a for a in alerts}.values())
    done.repeated = len(alerts) - len(unique)
    known = await _known(session, [a.alert_id for a in unique])
    done.repeated += len(known)
    fresh: dict[str, list[Alert]] = {}
    for alert in unique:
        if alert.alert_id not in known:
            fresh.setdefault(alert.report_id, []).append(alert)
    now = datetime.now(UTC)
    for report_id, new in fresh.items():
        case = (await session.scalars(select(Case).where(Case.report_id == report_id))).first()
        if case is None:
            await _open(session, report_id, new, due, now, actor)
            done.opened += 1
            continue
        closed = CaseState(case.state) in (CaseState.CLOSED, CaseState.AWAITING_APPROVAL)
        stored = (await session.scalars(select(Finding.alert).where(Finding.case_id == case.id))).all()
        view = caseview.cases_of([*(Alert.model_validate_json(a) for a in stored), *new])[0]
        before = {
            "state": case.state,
            "severity": case.severity,
            "due_at": case.due_at,
            "findings_after_close": case.findings_after_close,
        }
        severity = Severity(view.severity)
        if severity.rank > Severity(case.severity).rank:
            case.severity = severity.value
            case.due_at = min(case.due_at, now + timedelta(seconds=due[severity]))
        case.headline = view.headline
        case.updated_at = now
        if closed:
            case.findings_after_close += len(new)
            done.after_close += len(new)
        for alert in new:
            session.add(_finding(case.id, alert, now, closed))
        done.attached += len(new)
        await audit.append(
            session, actor, "case.findings_added", "case", case.id,
            before=before,
            after={
                "state": case.state,
                "severity": case.severity,
                "due_at": case.due_at,
                "findings_after_close": case.findings_after_close,
                "alert_ids": [a.alert_id for a in new],
                "rule_ids": sorted({a.rule_id for a in new}),
            },
        )  # fmt: skip
    await session.flush()
    return done


async def _open(
    session: AsyncSession,
    report_id: str,
    alerts: list[Alert],
    due: Mapping[Severity, float],
    now: datetime,
    actor: str,
) -> Case:
    view = caseview.cases_of(alerts)[0]
    severity = Severity(view.severity)
    first = alerts[0]
    case = Case(
        report_id=report_id,
        state=CaseState.OPEN.value,
        severity=severity.value,
        headline=view.headline,
        source=first.source,
        crossing=first.crossing,
        origin_country=first.origin_country,
        destination_country=first.destination_country,
        importer=first.importer,
        exporter=first.exporter,
        reported_at=_aware(first.reported_at),
        url=first.url,
        opened_at=now,
        due_at=now + timedelta(seconds=due[severity]),
        updated_at=now,
        findings_after_close=0,
        reopened=0,
    )  # fmt: skip
    session.add(case)
    await session.flush()
    for alert in alerts:
        session.add(_finding(case.id, alert, now, False))
    await audit.append(
        session, actor, "case.opened", "case", case.id,
        after={
            "report_id": report_id,
            "state": case.state,
            "severity": case.severity,
            "headline": case.headline,
            "due_at": case.due_at,
            "alert_ids": [a.alert_id for a in alerts],
            "rule_ids": sorted({a.rule_id for a in alerts}),
        },
    )  # fmt: skip
    return case
