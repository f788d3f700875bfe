"""Keep secrets out of logs and errors.

Channel URLs hold tokens (``slack://T000/B000/XXXX``, ``mailto://user:pass@host``), and so can
the Redis URL. Every secret value tradewatch loads is registered here, and every log line and
error text that leaves the process passes through :func:`redact`.
"""

from __future__ import annotations

import re
import threading

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# user:password@ in any URL; ?token=...-style query values; the path of a URL (tokens live there).
_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]{1,30}://)[^/\s:@]*:[^/\s@]*@", re.I)
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&](?:token|key|apikey|api_key|secret|password|pass|pwd|auth|signature|sig)=)[^&\s]+",
    re.I,
)

MASK = "***"


def register_secret(value: str | None) -> None:
    """Mask this value wherever it appears from now on (values shorter than 4 chars are ignored)."""
    if not value or len(value) < 4:
        return
    global _pattern
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    # Most values logged (ids, versions, counts as text) hold neither a URL nor a query: two
    # substring tests spare two regular-expression passes (every log line's every string goes
    # through here). Each pattern needs its literal to match, so the result is the same.
    if "://" in text:
        text = _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: f"{m.group('key')}{MASK}", text)
    return text


def describe_url(url: str) -> str:
    """A channel URL as it may be shown: scheme and host only, e.g. ``json://127.0.0.1:8080/…``."""
    match = re.match(r"^(?P<scheme>[a-z][a-z0-9+.\-]*)://(?:[^@/]*@)?(?P<host>[^/?#]*)", url, re.I)
    if not match:
        return MASK
    host = match.group("host")
    return f"{match.group('scheme')}://{host}/…" if host else f"{match.group('scheme')}://…"
