"""Who is asking: signed session cookies, CSRF tokens, login throttling, trusted proxies.

- A session is a cookie holding the user's name, a CSRF token and an expiry, signed with
  HMAC-SHA256 under the console's key: HttpOnly (scripts cannot read it), SameSite=Lax, Secure
  behind HTTPS. A cookie whose signature does not match, or that has expired, is no session.
  Whether the user may still act is checked against the store on every request (a disabled user's
  cookie opens nothing).
- Every state-changing request carries the session's CSRF token (a form field, or the
  ``X-CSRF-Token`` header for scripts); the login form has one of its own, bound to a short-lived
  cookie, since there is no session yet.
- Failed logins are counted per address and per name over 15 minutes; past the limit, logins
  from there or for that name wait.
- A single sign-on proxy may name the user in a header; it is believed only from the proxy
  addresses configured.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aredis

from services.settings import Settings

SESSION_COOKIE = "tw_session"
LOGIN_COOKIE = "tw_login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LOGIN_FORM_SECONDS = 3600.0
THROTTLE_WINDOW = 900.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs small JSON payloads with an expiry; anything altered or expired reads as None."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the console's signing key needs at least 32 bytes")
        self._key = key

    def _mac(self, body: str, purpose: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}:{body}".encode(), hashlib.sha256).digest())

    def sign(self, payload: dict[str, Any], seconds: float, purpose: str, now: float | None = None) -> str:
        body = _b64(json.dumps({**payload, "exp": (now or time.time()) + seconds}).encode())
        return f"{body}.{self._mac(body, purpose)}"

    def genuine(self, token: str | None, purpose: str) -> bool:
        """The token was signed here for this purpose (expired or not)."""
        if not token or token.count(".") != 1:
            return False
        body, mac = token.split(".")
        return hmac.compare_digest(mac, self._mac(body, purpose))

    def derive(self, text: str) -> str:
        """A value only this key makes from ``text`` (a single sign-on user's CSRF token)."""
        return self._mac(text, "derived")

    def read(self, token: str | None, purpose: str, now: float | None = None) -> dict[str, Any] | None:
        """The payload, when the token is ours, for this purpose, and not expired."""
        if token is None or not self.genuine(token, purpose):
            return None
        body = token.split(".")[0]
        try:
            payload = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(payload, dict) or float(payload.get("exp", 0)) < (
            time.time() if now is None else now
        ):
            return None
        return payload


def signing_key(settings: Settings) -> bytes:
    """The configured key, else the one kept in DATA_DIR/console.key (made once, readable by its
    owner only), so sessions outlive a restart."""
    if settings.console_secret is not None:
        return hashlib.sha256(settings.console_secret.get_secret_value().encode()).digest()
    path = settings.data_dir / "console.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return bytes.fromhex(Path(path).read_text().strip())


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    expires: float
    via: str
    """``password`` or ``sso``."""


def new_session(signer: Signer, user: str, seconds: float, via: str = "password") -> tuple[str, Session]:
    """A session cookie's value and what it holds."""
    csrf = secrets.token_urlsafe(24)
    now = time.time()
    token = signer.sign({"u": user, "c": csrf, "v": via}, seconds, "session", now)
    return token, Session(user, csrf, now + seconds, via)


def login_form(signer: Signer) -> tuple[str, str]:
    """The login form's cookie and the token its form carries (signed for the login form only:
    neither opens a session)."""
    csrf = secrets.token_urlsafe(24)
    return signer.sign({"c": csrf}, LOGIN_FORM_SECONDS, "login"), csrf


def login_token(signer: Signer, cookie: str | None) -> str | None:
    payload = signer.read(cookie, "login")
    return payload.get("c") if payload is not None and isinstance(payload.get("c"), str) else None


def read_session(signer: Signer, token: str | None) -> Session | None:
    payload = signer.read(token, "session")
    if payload is None or not isinstance(payload.get("u"), str) or not isinstance(payload.get("c"), str):
        return None
    return Session(payload["u"], payload["c"], float(payload["exp"]), str(payload.get("v", "password")))


def same_token(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class LoginThrottle:
    """Failed logins per key (an address, a name) within a sliding window, kept in Redis: every
    console process behind one address counts the same failures, and a restart forgets none."""

    def __init__(self, redis: aredis.Redis, prefix: str, limit: int, window: float = THROTTLE_WINDOW) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.window = window

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"  # a name typed is no key part

    async def wait(self, keys: Iterable[str], now: float | None = None) -> float:
        """Seconds until a login for these keys is heard again (0: now)."""
        now = time.time() if now is None else now
        longest = 0.0
        for key in keys:
            name = self._key(key)
            await self.redis.zremrangebyscore(name, "-inf", now - self.window)
            if await self.redis.zcard(name) >= self.limit:
                oldest = await self.redis.zrange(name, 0, 0, withscores=True)
                if oldest:
                    longest = max(longest, float(oldest[0][1]) + self.window - now)
        return longest

    async def failed(self, keys: Iterable[str], now: float | None = None) -> None:
        now = time.time() if now is None else now
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                name = self._key(key)
                pipe.zadd(name, {f"{now}:{secrets.token_hex(4)}": now})
                pipe.expire(name, int(self.window) + 1)
            await pipe.execute()

    async def succeeded(self, keys: Iterable[str]) -> None:
        await self.redis.delete(*(self._key(k) for k in keys))


class TrustedProxies:
    """The addresses a single sign-on header is believed from."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip()]

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)
