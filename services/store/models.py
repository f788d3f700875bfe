"""The store of record's tables: one set of models for SQLite and PostgreSQL.

- ``users``: who may read and act, with a role (viewer, analyst, reviewer, admin) and, for the
  console, an argon2 password hash;
- ``cases``: one per report, with its state, severity, due date, assignee and outcome;
- ``findings``: the alerts of a case, one row per alert id (the alert kept whole, as JSON);
- ``comments`` and ``decisions`` (each close, with its outcome, and its approval when one is needed);
- ``screening_exceptions``: reviewed "not this party" decisions the rules stage's screening skips;
- ``audit`` and ``audit_head``: the append-only, hash-chained trail of every action, and the
  chain's head (its last entry), the row writers lock to take their turn.

Times are stored in UTC and read back as aware datetimes on both databases. The audit's own time is
text (ISO 8601, microseconds, ``+00:00``): it is hashed as written, and sorts as it reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

GENESIS = "0" * 64
"""The previous hash of the first audit entry."""


class Role(StrEnum):
    VIEWER = "viewer"
    ANALYST = "analyst"
    REVIEWER = "reviewer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class CaseState(StrEnum):
    OPEN = "open"
    IN_REVIEW = "in_review"
    AWAITING_APPROVAL = "awaiting_approval"
    """Closed by one person as false positive or not relevant, waiting for a reviewer's approval."""
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return {
            CaseState.OPEN: "open",
            CaseState.IN_REVIEW: "in review",
            CaseState.AWAITING_APPROVAL: "closed, awaiting approval",
            CaseState.CLOSED: "closed",
        }[self]


class Outcome(StrEnum):
    VIOLATION = "violation"
    FALSE_POSITIVE = "false_positive"
    NOT_RELEVANT = "not_relevant"
    ESCALATED = "escalated"
    REPORTED = "reported"
    """Reported to the authorities."""

    @property
    def label(self) -> str:
        return {
            Outcome.VIOLATION: "violation",
            Outcome.FALSE_POSITIVE: "false positive",
            Outcome.NOT_RELEVANT: "not relevant",
            Outcome.ESCALATED: "escalated",
            Outcome.REPORTED: "reported to authorities",
        }[self]


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on both databases (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store: give it a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        when: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_must_change: Mapped[bool] = mapped_column(Boolean, default=False)
    """A one-time password: to be changed at the first login (the console asks for a new one)."""
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[str] = mapped_column(Text, unique=True)
    state: Mapped[str] = mapped_column(String(24), index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    headline: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    crossing: Mapped[str | None] = mapped_column(Text, index=True)
    origin_country: Mapped[str | None] = mapped_column(Text)
    destination_country: Mapped[str | None] = mapped_column(Text)
    importer: Mapped[str | None] = mapped_column(Text)
    exporter: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    url: Mapped[str | None] = mapped_column(Text)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(32))
    findings_after_close: Mapped[int] = mapped_column(Integer, default=0)
    """Findings that arrived while the case was closed (or awaiting approval), since it was."""
    reopened: Mapped[int] = mapped_column(Integer, default=0)


class Finding(Base):
    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[str] = mapped_column(Text, unique=True)
    rule_id: Mapped[str] = mapped_column(Text)
    rule_version: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """When the rules stage made the alert."""
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    after_close: Mapped[bool] = mapped_column(Boolean, default=False)
    """Arrived while its case was closed."""
    alert: Mapped[str] = mapped_column(Text)
    """The alert as JSON, as it came off the stream."""
    categories: Mapped[str] = mapped_column(Text, default="", server_default="")
    """The alert's categories as ``|tractors|excavators|``: one is matched with ``LIKE '%|name|%'``."""


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Decision(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approval_note: Mapped[str | None] = mapped_column(Text)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set when the case was reopened: the decision no longer holds."""


class ScreeningException(Base):
    __tablename__ = "screening_exceptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    """The name as screened (an importer, an exporter, a name in a report's text)."""
    entry: Mapped[str] = mapped_column(Text)
    """The listed entry's reference (KPe.016) it is not."""
    reason: Mapped[str] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    __tablename__ = "audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40), index=True)
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(Text)
    before: Mapped[str] = mapped_column(Text)
    after: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


Index("ix_audit_object", AuditEntry.object_type, AuditEntry.object_id)


class AuditHead(Base):
    """One row (id 1): the chain's last entry, and where it starts after a purge past retention."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    anchor_seq: Mapped[int] = mapped_column(Integer, default=0)
    """Entries up to this one were purged past retention; the chain starts after it."""
    anchor_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


class ArchivedReport(Base):
    """A report as it was published on the report stream, kept for backtests, lookbacks and flows.

    ``event_at`` is the time the report counts at (``services.wire.event_time``: its report date,
    else when it was received; the report schema v1 has no shipment period, and the customs tables'
    sources put the trade period in the report date); ``chapters`` its items' HS chapters
    as ``|84|85|`` (one is matched with ``LIKE '%|84|%'``), like a finding's categories.
    """

    __tablename__ = "archived_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[str] = mapped_column(Text, unique=True)
    source: Mapped[str] = mapped_column(Text, index=True)
    report: Mapped[str] = mapped_column(Text)
    """The report's JSON, as published (the stream entry's ``report`` field)."""
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    """When it reached the report stream (its entry id's time)."""
    event_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    crossing: Mapped[str | None] = mapped_column(Text, index=True)
    chapters: Mapped[str] = mapped_column(Text, default="", server_default="")
    archived_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LookbackBaseline(Base):
    """A sanctions list as the last lookback saw it: its version and a fingerprint of each entry,
    so the next version's new and changed entries are known without the old version at hand."""

    __tablename__ = "lookback_baselines"

    list_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[str] = mapped_column(Text)
    fingerprints: Mapped[str] = mapped_column(Text)
    """JSON: entry id -> fingerprint of the entry as listed."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
