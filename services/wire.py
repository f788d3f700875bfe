"""Stream entries on the wire: one JSON document in one named field, readable from any language.

``XADD tradewatch:reports * report '<json>'`` and ``... alerts * alert '<json>'``. Decoding
sorts failures into a :class:`BadMessage` with a reason a person can act on; the caller
dead-letters it and moves on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from schemas.alert import Alert
from schemas.report import ImportReport
from schemas.streams import ALERT_FIELD, REPORT_FIELD

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Entry:
    """A stream entry as read from a consumer group."""

    id: str
    fields: dict[bytes, bytes]
    deliveries: int = 1


def as_text(value: object) -> str:
    """A value as the server returned it (bytes without ``decode_responses``), as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class BadMessage(ValueError):
    """A message that can never be handled, whatever the retries: dead-letter it."""


def describe_validation(error: ValidationError, limit: int = 10) -> str:
    """``items.0.hs_code: an HS code is 2 to 10 digits; source: Field required``."""
    parts = []
    for problem in error.errors()[:limit]:
        where = ".".join(str(p) for p in problem["loc"]) or "(document)"
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _decode(entry: Entry, field: str, model: type[M], max_bytes: int) -> M:
    raw = entry.fields.get(field.encode())
    if raw is None:
        present = ", ".join(sorted(k.decode("utf-8", "replace") for k in entry.fields)) or "none"
        raise BadMessage(f"entry has no field {field!r} (fields present: {present})")
    if len(raw) > max_bytes:
        raise BadMessage(f"{field} is {len(raw)} bytes, over the limit of {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadMessage(f"{field} is not UTF-8 (byte {error.start})") from error
    try:
        return model.model_validate_json(text)
    except ValidationError as error:
        if any(p["type"] == "json_invalid" for p in error.errors()):
            try:
                json.loads(text)
            except ValueError as json_error:
                raise BadMessage(f"{field} is not JSON: {json_error}") from error
            except RecursionError:  # [[[[...]]]] thousands deep: refused, not a crash
                raise BadMessage(f"{field} is nested too deeply to be a {model.__name__}") from error
        raise BadMessage(f"{field} is not a valid {model.__name__}: {describe_validation(error)}") from error


def decode_report(entry: Entry, max_bytes: int = 1_000_000) -> ImportReport:
    return _decode(entry, REPORT_FIELD, ImportReport, max_bytes)


def decode_alert(entry: Entry, max_bytes: int = 1_000_000) -> Alert:
    return _decode(entry, ALERT_FIELD, Alert, max_bytes)


def report_fields(report: ImportReport) -> dict[str, str]:
    return {REPORT_FIELD: report.model_dump_json(exclude_none=True)}


def alert_fields(alert: Alert) -> dict[str, str]:
    return {ALERT_FIELD: alert.model_dump_json(exclude_none=True)}


def received_at(entry_id: str) -> datetime:
    """When an entry reached its stream: the milliseconds part of its id (set by the server)."""
    return datetime.fromtimestamp(int(entry_id.split("-", 1)[0]) / 1000, UTC)


def aware(when: datetime) -> datetime:
    """A time without a zone is taken as UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def event_time(report: ImportReport, received: datetime) -> datetime:
    """The time a report counts at for rules over time, the archive and flows: its report date,
    else when it was received. (The report schema v1 has no shipment period; the Comtrade and
    China Customs sources put the trade period in the report date. A shipment period added to the
    schema would come first here.)"""
    return aware(report.reported_at) if report.reported_at is not None else aware(received)
