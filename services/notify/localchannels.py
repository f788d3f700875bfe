"""Local Apprise channels for running tradewatch on one machine: the console and a JSON Lines file.

``twconsole://`` prints each message to standard output; ``twjsonl://var/alerts.jsonl`` appends
one JSON object per message to that file, relative to the working directory. Registered with Apprise's
own plugin decorator, so they are configured, tagged and tracked like any other channel.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from apprise.decorators import notify as _apprise_notify

from services.notify.webhook import case_document

# Apprise's decorator is untyped; this is its signature as used here.
notify = cast(Callable[..., Callable[[Callable[..., bool]], Callable[..., bool]]], _apprise_notify)

_write_lock = threading.Lock()


@notify(on="twconsole", name="tradewatch console")
def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    with _write_lock:
        sys.stdout.write(f"\n=== {title}\n{body}\n")
        sys.stdout.flush()
    return True


def jsonl_path(meta: dict[str, Any]) -> Path:
    # Apprise parses twjsonl://var/alerts.jsonl as host "var" and path "/alerts.jsonl".
    return Path(f"{meta.get('host') or ''}{meta.get('fullpath') or ''}")


@notify(on="twjsonl", name="tradewatch JSON Lines file")
def _jsonl(body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kwargs: Any) -> bool:
    path = jsonl_path(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The same shape as a JSON webhook's payload: the text, and the cases and alerts as objects.
    record: dict[str, Any] = {"at": datetime.now(UTC).isoformat(), "title": title}
    record.update(case_document(body) or {"message": body})
    line = json.dumps(record, ensure_ascii=False)
    with _write_lock, path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return True


LOCAL_SCHEMES = frozenset({"twconsole", "twjsonl"})
