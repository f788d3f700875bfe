"""Users: names, roles, argon2 password hashes for the console, logins, and the first admin.

Passwords are hashed with argon2id (argon2-cffi's defaults) and never written anywhere else: not
in the audit trail, not in a log line. The first admin is made when a store has no user yet
(the first start of the embedded default, or ``tradewatch db upgrade``), with a one-time password
shown once and marked to be changed at the first login (for the console to ask for a new one).
"""

from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.casework.access import AccessRefused, Refused, acting, find_user, reading
from services.store import Store, audit
from services.store.models import Role, User

FIRST_ADMIN = "admin"
SYSTEM = "tradewatch"
"""The actor of what tradewatch does by itself (the first admin, a migration)."""
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Checked against when a login names nobody, so an unknown name takes as long as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class UserView:
    name: str
    role: str
    disabled: bool
    has_password: bool
    must_change_password: bool
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            user.name,
            user.role,
            user.disabled,
            user.password_hash is not None,
            user.password_must_change,
            user.created_at,
            user.created_by,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "disabled": self.disabled,
            "has_password": self.has_password,
            "must_change_password": self.must_change_password,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise Refused(
            f"{name!r} cannot be a user name: use 1 to 64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise Refused(f"{role!r} is not a role: viewer, analyst, reviewer or admin") from None


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise Refused(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise Refused(f"a password has at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def bootstrap_admin(store: Store) -> tuple[str, str] | None:
    """Make the first admin when the store has no user: ``(name, one-time password)``, else None."""
    async with store.writing() as session:
        if await session.scalar(select(func.count()).select_from(User)):
            return None
        password = secrets.token_urlsafe(18)
        now = datetime.now(UTC)
        session.add(
            User(
                name=FIRST_ADMIN,
                role=Role.ADMIN.value,
                password_hash=hash_password(password),
                password_must_change=True,
                disabled=False,
                created_at=now,
                created_by=SYSTEM,
            )
        )
        await audit.append(
            session, SYSTEM, "user.added", "user", FIRST_ADMIN,
            after={"name": FIRST_ADMIN, "role": Role.ADMIN.value, "first_admin": True},
        )  # fmt: skip
        return FIRST_ADMIN, password


async def add_user(store: Store, actor: str, name: str, role: str, password: str | None) -> UserView:
    check_name(name)
    wanted = check_role(role)
    if password is not None:
        check_password(password)

    async def work(session: AsyncSession, by: User) -> UserView:
        if await find_user(session, name) is not None:
            raise Refused(f"there is already a user {name!r}")
        user = User(
            name=name,
            role=wanted.value,
            password_hash=hash_password(password) if password is not None else None,
            password_must_change=False,
            disabled=False,
            created_at=datetime.now(UTC),
            created_by=by.name,
        )
        session.add(user)
        await session.flush()
        await audit.append(
            session, by.name, "user.added", "user", name,
            after={"name": name, "role": wanted.value, "password": password is not None},
        )  # fmt: skip
        return UserView.of(user)

    return await acting(store, actor, Role.ADMIN, "adding a user", "user", name, work)


async def list_users(store: Store, actor: str) -> list[UserView]:
    async def work(session: AsyncSession, _: User) -> list[UserView]:
        users = (await session.scalars(select(User).order_by(User.name))).all()
        return [UserView.of(u) for u in users]

    return await reading(store, actor, "listing users", "user", "*", work)


async def disable_user(store: Store, actor: str, name: str) -> UserView:
    async def work(session: AsyncSession, by: User) -> UserView:
        user = await find_user(session, name)
        if user is None:
            raise Refused(f"there is no user {name!r}")
        if user.disabled:
            raise Refused(f"{name} is disabled already")
        if user.role == Role.ADMIN.value:
            admins = await session.scalar(
                select(func.count())
                .select_from(User)
                .where(User.role == Role.ADMIN.value, User.disabled.is_(False))
            )
            if (admins or 0) <= 1:
                raise Refused(f"{name} is the last admin: add another admin before disabling this one")
        user.disabled = True
        await audit.append(
            session,
            by.name,
            "user.disabled",
            "user",
            name,
            before={"disabled": False},
            after={"disabled": True},
        )
        return UserView.of(user)

    return await acting(store, actor, Role.ADMIN, "disabling a user", "user", name, work)


async def set_password(store: Store, actor: str, name: str, password: str) -> None:
    """An admin sets anyone's password; a user may set their own (which ends a one-time password)."""
    check_password(password)
    need = Role.VIEWER if actor == name else Role.ADMIN

    async def work(session: AsyncSession, by: User) -> None:
        user = by if by.name == name else await find_user(session, name)
        if user is None:
            raise Refused(f"there is no user {name!r}")
        user.password_hash = hash_password(password)
        user.password_must_change = by.name != name
        await audit.append(
            session, by.name, "user.password_set", "user", name, after={"one_time": user.password_must_change}
        )

    await acting(store, actor, need, "setting another user's password", "user", name, work)


async def login(store: Store, name: str, password: str) -> UserView:
    """Check a console login: the user, or :class:`AccessRefused`; both are audited."""
    async with store.writing() as session:
        user = await find_user(session, name)
        known = user.password_hash if user is not None and user.password_hash else _dummy_hash()
        try:
            ok = _hasher.verify(known, password) and user is not None and user.password_hash is not None
        except (VerificationError, InvalidHashError):
            ok = False
        reason = None
        if not ok:
            reason = "unknown user or wrong password"
        elif user is not None and user.disabled:
            reason = "the user is disabled"
        if reason is not None or user is None:
            await audit.append(session, name, "login.refused", "user", name, after={"reason": reason})
            refused = AccessRefused(f"login refused for {name!r}: {reason}")
        else:
            if _hasher.check_needs_rehash(known):
                user.password_hash = hash_password(password)
            await audit.append(
                session,
                name,
                "login",
                "user",
                name,
                after={"must_change_password": user.password_must_change},
            )
            return UserView.of(user)
    raise refused


__all__ = [
    "AccessRefused",
    "UserView",
    "add_user",
    "bootstrap_admin",
    "disable_user",
    "list_users",
    "login",
    "set_password",
]
