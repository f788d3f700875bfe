"""The console's door: who is asking, may they, and is a change request really theirs.

Every page and endpoint goes through :meth:`Gate.visitor` (who: a single sign-on header from a
trusted proxy, a session cookie, or HTTP Basic for scripts) and :meth:`Gate.require` (a role, and
for a change the session's CSRF token). A refusal is a :class:`Denied` with a plain sentence and
an HTTP status; it is logged and written to the audit trail as ``access.refused``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import redis.asyncio as aredis
from starlette.requests import Request

from services.casework import users
from services.casework.access import AccessRefused, Refused, find_user, record_refusal
from services.console.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    LoginThrottle,
    Signer,
    TrustedProxies,
    read_session,
    same_token,
)
from services.logging import get_logger
from services.settings import Settings
from services.store import Store
from services.store.models import Role

log = get_logger(component="console")


@dataclass(frozen=True)
class Visitor:
    name: str
    role: Role
    csrf: str
    via: str
    """``password`` (a session cookie), ``sso`` (a trusted header) or ``basic`` (a script)."""
    must_change_password: bool = False

    def may(self, role: Role | str) -> bool:
        return self.role.rank >= Role(role).rank


class Denied(Exception):
    """A request refused: ``status`` 401 (nobody known), 403 (not allowed), 429 (too many tries)."""

    def __init__(self, status: int, message: str, retry_after: float = 0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Gate:
    def __init__(self, settings: Settings, store: Store, signer: Signer, redis: aredis.Redis) -> None:
        self.settings = settings
        self.store = store
        self.signer = signer
        self.redis = redis
        self.throttle = LoginThrottle(
            redis, settings.streams.key("console", "login-failures"), settings.console_login_attempts
        )
        self.proxies = TrustedProxies(settings.console_trusted_proxies)
        self.header = settings.console_trusted_header

    async def refuse(
        self, request: Request, actor: str, doing: str, reason: str, status: int = 403
    ) -> Denied:
        """Log and audit a refusal; the exception to raise."""
        log.warning(
            "console request refused",
            actor=actor,
            doing=doing,
            reason=reason,
            client=client_of(request),
            path=request.url.path,
        )
        try:
            await record_refusal(self.store, actor, doing, "console", request.url.path, Refused(reason))
        except Exception as error:  # the refusal stands even when the audit cannot take it
            log.error("a console refusal could not be audited", error=str(error))
        return Denied(status, reason)

    async def visitor(self, request: Request, *, basic: bool = False) -> Visitor | None:
        """Who is asking, or None; a forged cookie or an untrusted single sign-on header is refused."""
        name, csrf, via = None, "", "password"
        if self.header and (claimed := request.headers.get(self.header)):
            if client_of(request) in self.proxies:
                name, csrf, via = claimed.strip(), self.signer.derive(f"csrf:{claimed.strip()}"), "sso"
            else:
                raise await self.refuse(
                    request,
                    claimed,
                    "signing in through the single sign-on header",
                    f"the {self.header} header is honoured only from the configured proxies, "
                    f"not from {client_of(request)}",
                )
        elif basic and (auth := request.headers.get("authorization", "")).lower().startswith("basic "):
            # A script's credentials come first: a session cookie beside them is not what it means.
            user, password = _basic(auth)
            await self.check_password(request, user, password)
            name, via = user, "basic"
        elif (token := request.cookies.get(SESSION_COOKIE)) is not None:
            session = read_session(self.signer, token)
            if session is None:
                if not self.signer.genuine(token, "session"):  # not merely expired: not ours
                    raise await self.refuse(
                        request,
                        "anonymous",
                        "using a session cookie",
                        "the session cookie is not one this console signed",
                        status=401,
                    )
                return None
            if await self.redis.exists(self._revoked_key(session.csrf)):
                return None  # logged out: the cookie is signed, but it no longer opens anything
            name, csrf = session.user, session.csrf
        if name is None:
            return None
        async with self.store.reading() as session_:
            user_row = await find_user(session_, name)
        if user_row is None or user_row.disabled:
            what = "there is no such user" if user_row is None else "the user is disabled"
            raise await self.refuse(request, name, "using the console", what, status=401)
        return Visitor(name, Role(user_row.role), csrf, via, bool(user_row.password_must_change))

    def _revoked_key(self, session_id: str) -> str:
        return self.settings.streams.key("console", "revoked", session_id)

    async def revoke(self, visitor: Visitor) -> None:
        """End a session before its cookie expires (logging out): a copy of the cookie kept
        elsewhere opens nothing either. Kept as long as the longest session lasts."""
        if visitor.via == "password":
            await self.redis.set(
                self._revoked_key(visitor.csrf), "1", ex=int(self.settings.console_session) + 60
            )

    async def check_password(self, request: Request, name: str, password: str) -> users.UserView:
        """A login (form or Basic): throttled per address and per name, audited either way."""
        keys = [f"ip:{client_of(request)}", f"user:{name.lower()}"]
        wait = await self.throttle.wait(keys)
        if wait > 0:
            denied = await self.refuse(
                request,
                name or "anonymous",
                "logging in",
                f"too many failed logins from here or for this name: try again in {int(wait) + 1} s",
                status=429,
            )
            denied.retry_after = wait
            raise denied
        try:
            found = await users.login(self.store, name, password)
        except AccessRefused:
            await self.throttle.failed(keys)
            log.warning("console login refused", user=name, client=client_of(request))
            raise Denied(401, "unknown user or wrong password") from None
        await self.throttle.succeeded(keys)
        return found

    async def require(
        self,
        request: Request,
        visitor: Visitor | None,
        need: Role,
        doing: str,
        *,
        changing: bool = False,
        form_token: str | None = None,
    ) -> Visitor:
        """The visitor, when they may do this; for a change, carrying their CSRF token."""
        if visitor is None:
            raise Denied(401, "log in first")
        if not visitor.may(need):
            raise await self.refuse(
                request,
                visitor.name,
                doing,
                f"{visitor.name} is {visitor.role.value}: {doing} needs the {need.value} role or above",
            )
        if changing and visitor.via != "basic":
            given = request.headers.get(CSRF_HEADER) or form_token
            if not same_token(given, visitor.csrf):
                raise await self.refuse(
                    request,
                    visitor.name,
                    doing,
                    "the request carries no valid CSRF token (reload the page and try again)",
                )
        return visitor


def _basic(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header.split(" ", 1)[1].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, IndexError):
        raise Denied(401, "the Authorization header is not HTTP Basic (name:password in base64)") from None
    name, _, password = decoded.partition(":")
    return name, password


__all__ = ["CSRF_FIELD", "Denied", "Gate", "Visitor", "client_of"]
