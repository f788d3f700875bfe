"""Screening exceptions: a reviewer's "not this party" decision on a sanctions match, kept.

An exception says that a name as screened (``Ryonha Trading Co.``) is not the listed entry
``KPe.016``, who decided it, why, and until when; it may be tied to the case where it was
decided, and revoked at any time. The store keeps them all (revoked and expired too); the ones in
force are published for the rules stage (:mod:`services.sanctions.store` reads them), whose screening
then holds back matches of that name to that entry and says so (see the README's "Reviewed
exceptions": the contract is :class:`schemas.sanctions.ScreeningException` in the Redis hash
``<namespace>:sanctions:exceptions``, which this module replaces whole at each publication).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.sanctions import ScreeningException as Published
from services.casework.access import Refused, acting, reading
from services.sanctions.matcher import exception_key
from services.sanctions.store import SanctionsStore
from services.settings import Settings
from services.store import Store, audit
from services.store.models import Case, Role, ScreeningException, User

MAX_NAME = 500


@dataclass(frozen=True)
class ExceptionView:
    id: int
    name: str
    entry: str
    reason: str
    by: str
    created_at: datetime
    until: datetime
    case_id: int | None
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None

    def in_force(self, now: datetime) -> bool:
        return self.revoked_at is None and self.until > now

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return f"revoked {self.revoked_at.date()} by {self.revoked_by}"
        return "in force" if self.until > now else "expired"

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        return {
            "id": self.id,
            "name": self.name,
            "entry": self.entry,
            "reason": self.reason,
            "by": self.by,
            "created_at": self.created_at.isoformat(),
            "until": self.until.isoformat(),
            "case_id": self.case_id,
            "in_force": self.in_force(now),
            "status": self.status(now),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
        }

    def published(self) -> Published:
        """As the rules stage reads it."""
        return Published(
            id=str(self.id), name=self.name, entry=self.entry, reason=self.reason, by=self.by,
            expires=self.until, created=self.created_at,
        )  # fmt: skip


async def _views(session: AsyncSession, rows: list[ScreeningException]) -> list[ExceptionView]:
    names = {u.id: u.name for u in (await session.scalars(select(User))).all()}
    return [
        ExceptionView(
            e.id,
            e.name,
            e.entry,
            e.reason,
            names.get(e.created_by, "?"),
            e.created_at,
            e.expires_at,
            e.case_id,
            e.revoked_at,
            names.get(e.revoked_by) if e.revoked_by else None,
            e.revoke_reason,
        )
        for e in rows
    ]


def _state(e: ScreeningException) -> dict[str, Any]:
    return {
        "name": e.name,
        "entry": e.entry,
        "reason": e.reason,
        "until": e.expires_at,
        "case_id": e.case_id,
        "revoked_at": e.revoked_at,
    }


async def add(
    store: Store,
    actor: str,
    name: str,
    entry: str,
    reason: str,
    until: datetime,
    case_id: int | None = None,
) -> ExceptionView:
    name, entry, reason = name.strip(), entry.strip(), (reason or "").strip()
    if not name or len(name) > MAX_NAME:
        raise Refused(f"an exception names the party as screened, in 1 to {MAX_NAME} characters")
    if not exception_key(name):
        raise Refused(f"{name!r} has nothing left to compare once legal forms are set aside")
    if not entry:
        raise Refused("an exception names the listed entry (its reference, e.g. KPe.016) the party is not")
    if not reason:
        raise Refused("an exception needs a reason (--reason)")
    now = datetime.now(UTC)
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    if until <= now:
        raise Refused(f"an exception must last into the future; {until.date()} has passed")

    async def work(session: AsyncSession, by: User) -> ExceptionView:
        if case_id is not None and await session.get(Case, case_id) is None:
            raise Refused(f"there is no case {case_id}")
        row = ScreeningException(
            name=name, entry=entry, reason=reason, case_id=case_id, created_by=by.id, created_at=now,
            expires_at=until,
        )  # fmt: skip
        session.add(row)
        await session.flush()
        await audit.append(session, by.name, "exception.added", "exception", row.id, after=_state(row))
        if case_id is not None:
            await audit.append(
                session, by.name, "case.exception_added", "case", case_id,
                after={"exception_id": row.id, "name": name, "entry": entry, "until": until},
            )  # fmt: skip
        return (await _views(session, [row]))[0]

    return await acting(store, actor, Role.REVIEWER, "keeping a screening exception", "exception", name, work)


async def revoke(store: Store, actor: str, exception_id: int, reason: str) -> ExceptionView:
    if not (reason or "").strip():
        raise Refused("revoking an exception needs a reason (--reason)")

    async def work(session: AsyncSession, by: User) -> ExceptionView:
        row = await session.get(ScreeningException, exception_id)
        if row is None:
            raise Refused(f"there is no screening exception {exception_id}")
        if row.revoked_at is not None:
            raise Refused(f"screening exception {exception_id} was revoked already")
        before = _state(row)
        row.revoked_at = datetime.now(UTC)
        row.revoked_by = by.id
        row.revoke_reason = reason.strip()
        await audit.append(
            session, by.name, "exception.revoked", "exception", exception_id,
            before=before, after={**_state(row), "reason": row.revoke_reason},
        )  # fmt: skip
        return (await _views(session, [row]))[0]

    return await acting(
        store, actor, Role.REVIEWER, "revoking a screening exception", "exception", exception_id, work
    )


async def listed(store: Store, actor: str, everything: bool = False) -> list[ExceptionView]:
    async def work(session: AsyncSession, _: User) -> list[ExceptionView]:
        query = select(ScreeningException).order_by(ScreeningException.id)
        if not everything:
            query = query.where(
                ScreeningException.revoked_at.is_(None), ScreeningException.expires_at > datetime.now(UTC)
            )
        return await _views(session, list((await session.scalars(query)).all()))

    return await reading(store, actor, "reading screening exceptions", "exception", "*", work)


async def in_force(store: Store) -> list[Published]:
    """The exceptions in force now, as the rules stage reads them."""
    async with store.reading() as session:
        query = select(ScreeningException).where(
            ScreeningException.revoked_at.is_(None), ScreeningException.expires_at > datetime.now(UTC)
        )
        rows = list((await session.scalars(query.order_by(ScreeningException.id))).all())
        return [v.published() for v in await _views(session, rows)]


async def publish(store: Store, redis: aredis.Redis, settings: Settings) -> int:
    """Put the exceptions in force where the rules stage reads them, replacing what was there in
    one transaction (a revoked or lapsed one leaves); how many there are."""
    current = await in_force(store)
    key = SanctionsStore(redis, settings).exceptions_key
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        if current:
            pipe.hset(key, mapping={str(e.id): e.model_dump_json(exclude_none=True) for e in current})
        await pipe.execute()
    return len(current)
