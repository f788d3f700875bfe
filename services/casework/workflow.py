"""The case workflow: open -> in review -> closed with an outcome, reopened with a reason.

- A case is opened by the records stage for a report's first alert; it is due after the time
  its severity allows (``TRADEWATCH_CASE_DUE``: critical 1 day, high 3, medium 7, low 30).
- Assigning it to someone puts an open case in review.
- Closing needs an outcome (violation, false positive, not relevant, escalated, reported to
  authorities) and a reason. Four eyes: a high or critical case closed as false positive or not
  relevant is "closed, awaiting approval" until a reviewer other than the one who closed it
  approves; until then it may be reopened instead.
- Alerts for a report whose case is closed attach to that case and are counted as arrived after
  the close (``findings_after_close``): they are visible, and reopening stays a person's decision.
- Reopening needs a reason; the case goes back to review (or to open when nobody has it), with a
  new due date, and the decision it had is withdrawn.

Every step is one transaction with its audit entry (before and after); bad input is refused with
a plain sentence and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Select, exists, func, select
from sqlalchemy import case as sql_case
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from schemas.alert import Alert, Severity
from services import cases as caseview
from services.casework.access import Missing, Refused, acting, find_user, reading
from services.settings import DEFAULT_CASE_DUE, Settings
from services.store import Store, audit
from services.store.models import (
    AuditEntry,
    Case,
    CaseState,
    Comment,
    Decision,
    Finding,
    Outcome,
    Role,
    ScreeningException,
    User,
)

FOUR_EYES_SEVERITIES = frozenset({Severity.HIGH, Severity.CRITICAL})
FOUR_EYES_OUTCOMES = frozenset({Outcome.FALSE_POSITIVE, Outcome.NOT_RELEVANT})
OPEN_STATES = (CaseState.OPEN, CaseState.IN_REVIEW)
CLOSED_STATES = (CaseState.AWAITING_APPROVAL, CaseState.CLOSED)
MAX_REASON = 4_000


E = TypeVar("E", bound=StrEnum)


def _choice(kind: type[E], value: str, aliases: dict[str, E], what: str) -> E:
    """``value`` as one of ``kind``, written as people write it (any case, spaces or hyphens)."""
    wanted = value.strip().lower().replace(" ", "_").replace("-", "_")
    if wanted in aliases:
        return aliases[wanted]
    try:
        return kind(wanted)
    except ValueError:
        raise Refused(f"{value!r} is not {what}: {', '.join(c.value for c in kind)}") from None


def parse_outcome(value: str | None) -> Outcome:
    if value is None or not value.strip():
        raise Refused(f"a case is closed with an outcome: {', '.join(o.value for o in Outcome)}")
    aliases = {"reported_to_authorities": Outcome.REPORTED, "fp": Outcome.FALSE_POSITIVE}
    return _choice(Outcome, value, aliases, "an outcome")


def parse_state(value: str) -> CaseState:
    aliases = {"review": CaseState.IN_REVIEW, "awaiting": CaseState.AWAITING_APPROVAL}
    return _choice(CaseState, value, aliases, "a case state")


def parse_severity(value: str) -> Severity:
    try:
        return Severity(value.strip().lower())
    except ValueError:
        raise Refused(f"{value!r} is not a severity: {', '.join(s.value for s in Severity)}") from None


def _reason(text: str | None, what: str) -> str:
    if text is None or not text.strip():
        raise Refused(f"{what} needs a reason (--reason)")
    if len(text) > MAX_REASON:
        raise Refused(f"a reason has at most {MAX_REASON} characters; this one has {len(text)}")
    return text.strip()


SORTS = {
    "urgency": "open work first, the worst and the most urgent at the top",
    "due": "the earliest due first",
    "opened": "the newest first",
    "updated": "the most recently changed first",
    "severity": "the most severe first",
}


@dataclass(frozen=True)
class CaseFilter:
    states: Sequence[CaseState] = ()
    severities: Sequence[Severity] = ()
    crossing: str | None = None
    assignee: str | None = None
    """A user name, or ``none`` for cases nobody has."""
    since: datetime | None = None
    """Cases opened at or after this time."""
    until: datetime | None = None
    """Cases opened before this time."""
    category: str | None = None
    """Cases with a finding about an item of this category."""
    rule: str | None = None
    """Cases with a finding of this rule."""
    order: str = "urgency"
    """One of :data:`SORTS`."""
    limit: int = 200
    offset: int = 0


@dataclass(frozen=True)
class CasePage:
    """One page of an inbox: the cases, how many match in all, and how many in each state."""

    cases: list[CaseSummary]
    total: int
    by_state: dict[CaseState, int]
    offset: int
    limit: int


@dataclass(frozen=True)
class CaseSummary:
    id: int
    report_id: str
    state: CaseState
    severity: Severity
    headline: str
    crossing: str | None
    assignee: str | None
    opened_at: datetime
    due_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    outcome: Outcome | None
    findings: int
    findings_after_close: int
    reopened: int

    def overdue(self, now: datetime) -> bool:
        return self.state in OPEN_STATES and now > self.due_at

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        return {
            "id": self.id,
            "report_id": self.report_id,
            "state": self.state.value,
            "state_label": self.state.label,
            "severity": self.severity.value,
            "headline": self.headline,
            "crossing": self.crossing,
            "assignee": self.assignee,
            "opened_at": self.opened_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "overdue": self.overdue(now),
            "updated_at": self.updated_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "outcome": self.outcome.value if self.outcome else None,
            "findings": self.findings,
            "findings_after_close": self.findings_after_close,
            "reopened": self.reopened,
        }


@dataclass(frozen=True)
class CommentView:
    id: int
    author: str
    at: datetime
    body: str


@dataclass(frozen=True)
class DecisionView:
    outcome: Outcome
    reason: str
    by: str
    at: datetime
    needs_approval: bool
    approved_by: str | None
    approved_at: datetime | None
    approval_note: str | None
    withdrawn_at: datetime | None


@dataclass(frozen=True)
class CaseDetail:
    summary: CaseSummary
    case: caseview.Case
    """The case as the notifier presents it, from every alert recorded for it."""
    after_close: list[str]
    """Alert ids that arrived while the case was closed."""
    comments: list[CommentView]
    decisions: list[DecisionView]
    history: list[dict[str, Any]]
    """The audit entries about this case, oldest first."""
    exceptions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.summary.as_dict(),
            "case": self.case.as_dict(),
            "after_close": self.after_close,
            "comments": [
                {"id": c.id, "author": c.author, "at": c.at.isoformat(), "body": c.body}
                for c in self.comments
            ],
            "decisions": [
                {
                    "outcome": d.outcome.value,
                    "reason": d.reason,
                    "by": d.by,
                    "at": d.at.isoformat(),
                    "needs_approval": d.needs_approval,
                    "approved_by": d.approved_by,
                    "approved_at": d.approved_at.isoformat() if d.approved_at else None,
                    "approval_note": d.approval_note,
                    "withdrawn_at": d.withdrawn_at.isoformat() if d.withdrawn_at else None,
                }
                for d in self.decisions
            ],
            "history": self.history,
            "exceptions": self.exceptions,
        }


def _findings_count() -> Any:
    return (
        select(Finding.case_id, func.count(Finding.id).label("n"))
        .group_by(Finding.case_id)
        .subquery("finding_counts")
    )


def _summaries_query() -> tuple[Select[Any], Any]:
    counts = _findings_count()
    assignee = aliased(User)
    query = (
        select(Case, assignee.name, func.coalesce(counts.c.n, 0))
        .outerjoin(assignee, Case.assignee_id == assignee.id)
        .outerjoin(counts, counts.c.case_id == Case.id)
    )
    return query, assignee


def _summary(case: Case, assignee: str | None, findings: int) -> CaseSummary:
    return CaseSummary(
        id=case.id,
        report_id=case.report_id,
        state=CaseState(case.state),
        severity=Severity(case.severity),
        headline=case.headline,
        crossing=case.crossing,
        assignee=assignee,
        opened_at=case.opened_at,
        due_at=case.due_at,
        updated_at=case.updated_at,
        closed_at=case.closed_at,
        outcome=Outcome(case.outcome) if case.outcome else None,
        findings=int(findings),
        findings_after_close=case.findings_after_close,
        reopened=case.reopened,
    )


def _conditions(wanted: CaseFilter, assignee: Any) -> list[Any]:
    """The WHERE clauses of a filter (the assignee table is the query's aliased user)."""
    where: list[Any] = []
    if wanted.states:
        where.append(Case.state.in_([s.value for s in wanted.states]))
    if wanted.severities:
        where.append(Case.severity.in_([s.value for s in wanted.severities]))
    if wanted.crossing:
        where.append(func.lower(Case.crossing) == wanted.crossing.strip().lower())
    if wanted.assignee:
        if wanted.assignee.lower() in ("none", "-", "nobody"):
            where.append(Case.assignee_id.is_(None))
        else:
            where.append(assignee.name == wanted.assignee)
    if wanted.since is not None:
        where.append(Case.opened_at >= wanted.since)
    if wanted.until is not None:
        where.append(Case.opened_at < wanted.until)
    if wanted.category:
        # Bars around every category (``|a|b|``), so one category matches exactly.
        pattern = "%|" + wanted.category.replace("%", "").replace("_", "\\_") + "|%"
        where.append(
            exists().where(Finding.case_id == Case.id, Finding.categories.like(pattern, escape="\\"))
        )
    if wanted.rule:
        where.append(exists().where(Finding.case_id == Case.id, Finding.rule_id == wanted.rule))
    return where


def _rank(column: Any, values: Sequence[str]) -> Any:
    """A column's values as their position in ``values`` (SQL ``CASE``), for sorting."""
    return sql_case({v: i for i, v in enumerate(values)}, value=column, else_=len(values))


def _ordering(order: str) -> list[Any]:
    states = _rank(Case.state, [s.value for s in CaseState])
    worst_first = _rank(Case.severity, [s.value for s in sorted(Severity, key=lambda s: -s.rank)])
    if order == "due":
        return [Case.due_at, Case.id]
    if order == "opened":
        return [Case.opened_at.desc(), Case.id.desc()]
    if order == "updated":
        return [Case.updated_at.desc(), Case.id.desc()]
    if order == "severity":
        return [worst_first, Case.due_at, Case.id]
    return [states, worst_first, Case.due_at, Case.id]


def _state_of(case: Case) -> dict[str, Any]:
    """What an audit entry records of a case before and after a step."""
    return {
        "state": case.state,
        "severity": case.severity,
        "assignee_id": case.assignee_id,
        "due_at": case.due_at,
        "outcome": case.outcome,
    }


class Casework:
    """The case workflow over one store, with the due dates and limits of the settings."""

    def __init__(
        self,
        store: Store,
        due: Mapping[Severity, float] | None = None,
        comment_max_chars: int = 10_000,
    ) -> None:
        self.store = store
        self.due = {**DEFAULT_CASE_DUE, **(due or {})}
        self.comment_max_chars = comment_max_chars

    @classmethod
    def from_settings(cls, settings: Settings, store: Store | None = None) -> Casework:
        return cls(store or Store.from_settings(settings), settings.case_due, settings.comment_max_chars)

    def due_from(self, start: datetime, severity: Severity) -> datetime:
        return start + timedelta(seconds=self.due[severity])

    # --- reading

    async def list(self, actor: str, wanted: CaseFilter | None = None) -> list[CaseSummary]:
        return (await self.page(actor, wanted)).cases

    async def page(self, actor: str, wanted: CaseFilter | None = None) -> CasePage:
        """The cases that match, sorted and paged, with the count of all that match by state."""
        wanted = wanted or CaseFilter()
        if wanted.order not in SORTS:
            raise Refused(f"{wanted.order!r} is not a sort order: {', '.join(SORTS)}")

        async def work(session: AsyncSession, _: User) -> CasePage:
            assignee = aliased(User)
            conditions = _conditions(wanted, assignee)
            query = (
                select(Case, assignee.name)
                .outerjoin(assignee, Case.assignee_id == assignee.id)
                .where(*conditions)
                .order_by(*_ordering(wanted.order))
            )
            rows = (await session.execute(query.offset(wanted.offset).limit(wanted.limit))).all()
            # Findings are counted for the page's cases only, not for every case there is.
            ids = [c.id for c, _ in rows]
            counts = dict(
                (
                    await session.execute(
                        select(Finding.case_id, func.count(Finding.id))
                        .where(Finding.case_id.in_(ids))
                        .group_by(Finding.case_id)
                    )
                ).all()
            )
            counted = select(Case.state, func.count(Case.id)).outerjoin(
                assignee, Case.assignee_id == assignee.id
            )
            by_state = {
                CaseState(state): int(n)
                for state, n in (await session.execute(counted.where(*conditions).group_by(Case.state))).all()
            }
            return CasePage(
                cases=[_summary(c, a, counts.get(c.id, 0)) for c, a in rows],
                total=sum(by_state.values()),
                by_state=by_state,
                offset=wanted.offset,
                limit=wanted.limit,
            )

        return await reading(self.store, actor, "reading cases", "case", "*", work)

    async def show(self, actor: str, case_id: int) -> CaseDetail:
        async def work(session: AsyncSession, _: User) -> CaseDetail:
            return await self._detail(session, case_id)

        return await reading(self.store, actor, "reading a case", "case", case_id, work)

    async def _detail(self, session: AsyncSession, case_id: int) -> CaseDetail:
        query, _ = _summaries_query()
        found = (await session.execute(query.where(Case.id == case_id))).first()
        if found is None:
            raise Missing(f"there is no case {case_id}")
        case, assignee, n = found
        findings = (
            await session.scalars(select(Finding).where(Finding.case_id == case_id).order_by(Finding.id))
        ).all()
        alerts = [Alert.model_validate_json(f.alert) for f in findings]
        view = caseview.cases_of(alerts)[0]
        names = {u.id: u.name for u in (await session.scalars(select(User))).all()}
        comments = (
            await session.scalars(select(Comment).where(Comment.case_id == case_id).order_by(Comment.id))
        ).all()
        decisions = (
            await session.scalars(select(Decision).where(Decision.case_id == case_id).order_by(Decision.id))
        ).all()
        history = (
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.object_type == "case", AuditEntry.object_id == str(case_id))
                .order_by(AuditEntry.seq)
            )
        ).all()
        exceptions = (
            await session.scalars(select(ScreeningException).where(ScreeningException.case_id == case_id))
        ).all()
        return CaseDetail(
            summary=_summary(case, assignee, n),
            case=view,
            after_close=[f.alert_id for f in findings if f.after_close],
            comments=[CommentView(c.id, names.get(c.author_id, "?"), c.created_at, c.body) for c in comments],
            decisions=[
                DecisionView(
                    Outcome(d.outcome),
                    d.reason,
                    names.get(d.decided_by, "?"),
                    d.decided_at,
                    d.needs_approval,
                    names.get(d.approved_by) if d.approved_by else None,
                    d.approved_at,
                    d.approval_note,
                    d.withdrawn_at,
                )
                for d in decisions
            ],
            history=[audit.row(e) for e in history],
            exceptions=[
                {
                    "id": e.id,
                    "name": e.name,
                    "entry": e.entry,
                    "reason": e.reason,
                    "by": names.get(e.created_by, "?"),
                    "until": e.expires_at.isoformat(),
                    "revoked": e.revoked_at is not None,
                }
                for e in exceptions
            ],
        )

    # --- steps

    async def _case(self, session: AsyncSession, case_id: int) -> Case:
        case = await session.get(Case, case_id)
        if case is None:
            raise Missing(f"there is no case {case_id}")
        return case

    async def assign(self, actor: str, case_id: int, assignee: str | None) -> CaseSummary:
        """Give the case to someone (``None``: to nobody); an open case goes into review."""

        async def work(session: AsyncSession, by: User) -> CaseSummary:
            case = await self._case(session, case_id)
            if CaseState(case.state) in CLOSED_STATES:
                raise Refused(
                    f"case {case_id} is {CaseState(case.state).label}: reopen it before assigning it"
                )
            target = None
            if assignee is not None:
                target = await find_user(session, assignee)
                if target is None:
                    raise Refused(f"there is no user {assignee!r} to assign case {case_id} to")
                if target.disabled:
                    raise Refused(f"{assignee} is disabled and cannot be given a case")
                if Role(target.role).rank < Role.ANALYST.rank:
                    raise Refused(f"{assignee} is a viewer and cannot work a case (analyst role or above)")
            before = _state_of(case)
            previous = await session.get(User, case.assignee_id) if case.assignee_id else None
            before_name = previous.name if previous else None
            case.assignee_id = target.id if target else None
            if target is not None and case.state == CaseState.OPEN:
                case.state = CaseState.IN_REVIEW.value
            case.updated_at = datetime.now(UTC)
            await audit.append(
                session, by.name, "case.assigned", "case", case_id,
                before={**before, "assignee": before_name},
                after={**_state_of(case), "assignee": target.name if target else None},
            )  # fmt: skip
            return await self._summary(session, case_id)

        return await acting(self.store, actor, Role.ANALYST, "assigning a case", "case", case_id, work)

    async def comment(self, actor: str, case_id: int, text: str) -> CommentView:
        body = (text or "").strip()
        if not body:
            raise Refused("a comment cannot be empty")
        if len(body) > self.comment_max_chars:
            raise Refused(
                f"a comment has at most {self.comment_max_chars:,} characters; this one has {len(body):,}"
            )

        async def work(session: AsyncSession, by: User) -> CommentView:
            case = await self._case(session, case_id)
            now = datetime.now(UTC)
            comment = Comment(case_id=case.id, author_id=by.id, body=body, created_at=now)
            session.add(comment)
            case.updated_at = now
            await session.flush()
            await audit.append(
                session,
                by.name,
                "case.commented",
                "case",
                case_id,
                after={"comment_id": comment.id, "text": body},
            )
            return CommentView(comment.id, by.name, now, body)

        return await acting(self.store, actor, Role.ANALYST, "commenting on a case", "case", case_id, work)

    async def close(self, actor: str, case_id: int, outcome: str | None, reason: str | None) -> CaseSummary:
        decided = parse_outcome(outcome)
        why = _reason(reason, "closing a case")

        async def work(session: AsyncSession, by: User) -> CaseSummary:
            case = await self._case(session, case_id)
            state = CaseState(case.state)
            if state in CLOSED_STATES:
                raise Refused(f"case {case_id} is {state.label} already")
            now = datetime.now(UTC)
            needs_approval = Severity(case.severity) in FOUR_EYES_SEVERITIES and decided in FOUR_EYES_OUTCOMES
            before = _state_of(case)
            case.state = (CaseState.AWAITING_APPROVAL if needs_approval else CaseState.CLOSED).value
            case.outcome = decided.value
            case.closed_at = now
            case.updated_at = now
            case.findings_after_close = 0
            session.add(
                Decision(
                    case_id=case.id,
                    outcome=decided.value,
                    reason=why,
                    decided_by=by.id,
                    decided_at=now,
                    needs_approval=needs_approval,
                )
            )
            await audit.append(
                session, by.name, "case.closed", "case", case_id,
                before=before, after={**_state_of(case), "reason": why, "needs_approval": needs_approval},
            )  # fmt: skip
            return await self._summary(session, case_id)

        return await acting(self.store, actor, Role.ANALYST, "closing a case", "case", case_id, work)

    async def approve(self, actor: str, case_id: int, note: str | None = None) -> CaseSummary:
        async def work(session: AsyncSession, by: User) -> CaseSummary:
            case = await self._case(session, case_id)
            state = CaseState(case.state)
            if state is not CaseState.AWAITING_APPROVAL:
                raise Refused(
                    f"case {case_id} is {state.label}: only a case closed and awaiting approval is approved"
                )
            decision = await self._open_decision(session, case_id)
            if decision.decided_by == by.id:
                raise Refused(
                    f"{by.name} closed case {case_id}: the approval must come from a second person with the reviewer role"
                )
            now = datetime.now(UTC)
            before = _state_of(case)
            decision.approved_by = by.id
            decision.approved_at = now
            decision.approval_note = note.strip() if note and note.strip() else None
            case.state = CaseState.CLOSED.value
            case.updated_at = now
            await audit.append(
                session, by.name, "case.approved", "case", case_id,
                before=before, after={**_state_of(case), "note": decision.approval_note},
            )  # fmt: skip
            return await self._summary(session, case_id)

        return await acting(self.store, actor, Role.REVIEWER, "approving a close", "case", case_id, work)

    async def reopen(self, actor: str, case_id: int, reason: str | None) -> CaseSummary:
        why = _reason(reason, "reopening a case")

        async def work(session: AsyncSession, by: User) -> CaseSummary:
            case = await self._case(session, case_id)
            state = CaseState(case.state)
            if state not in CLOSED_STATES:
                raise Refused(f"case {case_id} is {state.label}: only a closed case is reopened")
            now = datetime.now(UTC)
            before = {**_state_of(case), "findings_after_close": case.findings_after_close}
            decision = await self._open_decision(session, case_id)
            decision.withdrawn_at = now
            case.state = (CaseState.IN_REVIEW if case.assignee_id else CaseState.OPEN).value
            case.outcome = None
            case.closed_at = None
            case.findings_after_close = 0
            case.reopened += 1
            case.due_at = self.due_from(now, Severity(case.severity))
            case.updated_at = now
            await audit.append(
                session, by.name, "case.reopened", "case", case_id,
                before=before, after={**_state_of(case), "reason": why},
            )  # fmt: skip
            return await self._summary(session, case_id)

        return await acting(self.store, actor, Role.ANALYST, "reopening a case", "case", case_id, work)

    async def _open_decision(self, session: AsyncSession, case_id: int) -> Decision:
        decision = (
            await session.scalars(
                select(Decision)
                .where(Decision.case_id == case_id, Decision.withdrawn_at.is_(None))
                .order_by(Decision.id.desc())
            )
        ).first()
        if decision is None:  # a closed case always has its decision; the store says otherwise
            raise RuntimeError(f"case {case_id} is closed without a decision on record")
        return decision

    async def _summary(self, session: AsyncSession, case_id: int) -> CaseSummary:
        query, _ = _summaries_query()
        case, assignee, n = (await session.execute(query.where(Case.id == case_id))).one()
        return _summary(case, assignee, n)


__all__ = [
    "SORTS",
    "CaseDetail",
    "CaseFilter",
    "CasePage",
    "CaseSummary",
    "Casework",
    "parse_outcome",
    "parse_severity",
    "parse_state",
]
