"""Structured logs: one line per message handled; JSON off a terminal, readable on one.

tradewatch's own lines (structlog) and the libraries' lines (FastStream's internals, Apprise,
uvicorn, asyncio: anything that logs through the standard library) end in the same renderer:
with JSON logs every line on stderr is one JSON object, with the same keys (``event``,
``level``, ``timestamp``, and ``logger`` for a library's line), and every line is redacted.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from services.redact import redact

LONG_LIST = 3
"""On a terminal, a list longer than this shows its first items and how many there are..."""
LONG_VALUE = 120
"""... and a list or a mapping whose text is longer than this is cut (strings never are)."""


def _redact_event(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
        elif isinstance(value, BaseException):
            event[key] = redact(f"{type(value).__name__}: {value}")
    return event


def _for_people(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """For people reading a terminal: ``alert_ids=['a-1', 'a-2', '… 46 in all']``, long
    collections cut, and FastStream's chatter about its own tasks left out. JSON lines keep
    everything (up to the limits each line sets itself)."""
    if event.get("component") == "faststream":
        if str(event.get("event", "")).startswith("callback for "):
            raise structlog.DropEvent
        if event.get("extra", "") is None:
            del event["extra"]
    for key, value in event.items():
        if isinstance(value, list | tuple) and len(value) > LONG_LIST:
            value = [*value[: LONG_LIST - 1], f"… {len(value)} in all"]
        if isinstance(value, list | tuple | dict) and len(text := repr(value)) > LONG_VALUE:
            value = text[:LONG_VALUE] + "…"
        event[key] = value
    return event


def configure(level: str = "info", fmt: str = "auto") -> None:
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    # Tracebacks become text before redaction, on a terminal too: an exception's message can
    # hold a URL with its token.
    finish: list[Any] = [structlog.processors.format_exc_info, _redact_event]
    if not json_lines:
        finish.append(_for_people)
    finish.append(renderer)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *finish,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # The stderr of the moment a logger is made, not of the moment of configuring: a test
        # runner (or a daemon) that swaps and closes stderr leaves no logger writing to a closed file.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    # The libraries log through the standard library: their records take the same way out,
    # the message as ``event`` and the library's logger as ``logger``.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finish],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    # Warnings and above from the libraries; at debug their debug lines too (Apprise logs the
    # URLs it posts to): that is when an operator hunts a failing channel, and they pass
    # through the same redaction. The level is the handler's, not only the root logger's: a
    # library logger set lower on purpose (Apprise's, so that a failed send's reply can be
    # captured) still prints nothing below it.
    library_level = logging.DEBUG if level == "debug" else logging.WARNING
    handler.setLevel(library_level)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(library_level)


class _StderrHandler(logging.StreamHandler[Any]):
    """Writes to the stderr of the moment of each record, as the structlog loggers do."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # under the handler's lock (Handler.handle)
        super().emit(record)


def _stderr_logger(*_: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def get_logger(**context: Any) -> Any:
    return structlog.get_logger().bind(**context)
