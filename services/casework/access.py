"""Who may do what: four roles, each allowed what the one below it may, and more.

- viewer: read cases, users, exceptions;
- analyst: also assign, comment, close and reopen cases;
- reviewer: also approve a close that needs a second person, and keep screening exceptions;
- admin: also manage users and purge past retention.

A refusal is an exception with a plain sentence, and an entry in the audit trail
(``access.refused``), written in a transaction of its own since the refused one changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.store import Store, audit
from services.store.models import Role, User

T = TypeVar("T")


class Refused(ValueError):
    """Bad input or a step the case's state does not allow: nothing was changed."""


class Missing(Refused):
    """What was asked for does not exist (a case id, a user)."""


class AccessRefused(Refused):
    """The user may not do this (unknown, disabled, or a role too low): recorded in the audit."""


def _a(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


async def find_user(session: AsyncSession, name: str) -> User | None:
    return (await session.scalars(select(User).where(User.name == name))).first()


async def authorize(session: AsyncSession, name: str, need: Role, doing: str) -> User:
    """The user, when they may do this; else :class:`AccessRefused` saying why."""
    user = await find_user(session, name)
    if user is None:
        raise AccessRefused(f"there is no user {name!r} (`tradewatch users list` shows who there is)")
    if user.disabled:
        raise AccessRefused(f"{name} is disabled and may not act")
    role = Role(user.role)
    if role.rank < need.rank:
        raise AccessRefused(f"{name} is {_a(role.value)}: {doing} needs the {need.value} role or above")
    return user


async def record_refusal(
    store: Store, actor: str, doing: str, object_type: str, object_id: str | int, refused: Refused
) -> None:
    """An ``access.refused`` entry in a transaction of its own (the refused one changes nothing)."""
    async with store.writing() as session:
        await audit.append(
            session,
            actor,
            "access.refused",
            object_type,
            object_id,
            after={"doing": doing, "reason": str(refused)},
        )


async def acting(
    store: Store,
    actor: str,
    need: Role,
    doing: str,
    object_type: str,
    object_id: str | int,
    work: Callable[[AsyncSession, User], Awaitable[T]],
) -> T:
    """Run ``work`` in one writing transaction as ``actor``, once their role allows ``doing``."""
    return await _as(store.writing, store, actor, need, doing, object_type, object_id, work)


async def reading(
    store: Store,
    actor: str,
    doing: str,
    object_type: str,
    object_id: str | int,
    work: Callable[[AsyncSession, User], Awaitable[T]],
    need: Role = Role.VIEWER,
) -> T:
    """Run ``work`` in one read-only transaction as ``actor``, once their role allows reading."""
    return await _as(store.reading, store, actor, need, doing, object_type, object_id, work)


async def _as(
    transaction: Callable[[], AbstractAsyncContextManager[AsyncSession]],
    store: Store,
    actor: str,
    need: Role,
    doing: str,
    object_type: str,
    object_id: str | int,
    work: Callable[[AsyncSession, User], Awaitable[T]],
) -> T:
    """``work`` as ``actor`` in ``transaction``; a refusal is recorded in the audit trail."""
    try:
        async with transaction() as session:
            user = await authorize(session, actor, need, doing)
            return await work(session, user)
    except AccessRefused as refused:
        await record_refusal(store, actor, doing, object_type, object_id, refused)
        raise
