"""The audit trail: append-only, hash-chained, verifiable, exportable, kept past its retention.

Every entry says who (``actor``), when (``at``), what (``action`` on ``object_type`` ``object_id``)
and the value before and after, as JSON. Each entry carries the hash of the one before it
(``prev_hash``) and its own ``hash``: SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8)
of its fields together with ``prev_hash``. Changing, removing or inserting an entry breaks the chain
at that entry, and :func:`verify` names it.

One writer at a time: an entry is appended only inside :meth:`Store.writing`, which has locked the
chain's head (``audit_head``, one row) before anything else, so two writers never both take the
same head. The table itself refuses UPDATE and DELETE (triggers, see the first migration); only a
purge of entries past the retention lifts the delete guard, inside its own transaction, and
records where the chain now starts (the anchor) so the rest still verifies.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.models import GENESIS, AuditEntry, AuditHead

FIELDS = ("seq", "at", "actor", "action", "object_type", "object_id", "before", "after")
EXPORT_FIELDS = (*FIELDS, "prev_hash", "hash")
PAGE = 1_000


def plain(value: Any) -> Any:
    """A value as JSON holds it: times as ISO 8601 text, enums as their value."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def canonical(value: Any) -> str:
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def timestamp(at: datetime | None = None) -> str:
    """``2026-03-19T10:04:05.123456+00:00``: fixed width, so text order is time order."""
    return (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(fields: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 over the canonical JSON of the entry's fields and the previous entry's hash."""
    document = {name: fields[name] for name in FIELDS}
    document["before"] = (
        json.loads(document["before"]) if isinstance(document["before"], str) else document["before"]
    )
    document["after"] = (
        json.loads(document["after"]) if isinstance(document["after"], str) else document["after"]
    )
    document["prev_hash"] = prev_hash
    return hashlib.sha256(canonical(document).encode("utf-8")).hexdigest()


async def append(
    session: AsyncSession,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. Call only inside :meth:`Store.writing` (the head is locked there)."""
    head = await session.get(AuditHead, 1)
    if head is None:
        raise RuntimeError("the store has no audit head: run `tradewatch db upgrade`")
    fields = {
        "seq": head.seq + 1,
        "at": timestamp(),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "before": canonical(before or {}),
        "after": canonical(after or {}),
    }
    digest = entry_hash(fields, head.hash)
    entry = AuditEntry(**fields, prev_hash=head.hash, hash=digest)
    session.add(entry)
    head.seq = entry.seq
    head.hash = digest
    await session.flush()
    return entry


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    """Entries whose hash was recomputed."""
    first: int
    last: int
    broken: int | None = None
    """The first entry at fault (its seq), when the chain is broken."""
    problem: str | None = None

    def summary(self) -> str:
        if self.ok:
            if not self.checked:
                return "the audit trail is empty: nothing to verify"
            return f"the audit chain is intact: {self.checked} entries, {self.first} to {self.last}"
        return f"the audit chain is broken at entry {self.broken}: {self.problem}"


async def entries(session: AsyncSession, after_seq: int = 0) -> AsyncIterator[AuditEntry]:
    """Entries in chain order, a page at a time."""
    last = after_seq
    while True:
        query = select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(PAGE)
        page = (await session.scalars(query)).all()
        for entry in page:
            yield entry
        if len(page) < PAGE:
            return
        last = page[-1].seq


async def verify(session: AsyncSession) -> Verification:
    """Walk the chain from its anchor to its head; name the first entry that does not hold."""
    head = await session.get(AuditHead, 1)
    if head is None:
        return Verification(
            False, 0, 0, 0, 0, "the audit head is missing: the store was not migrated or was tampered with"
        )
    expected_seq = head.anchor_seq + 1
    prev = head.anchor_hash
    checked = 0
    async for entry in entries(session, head.anchor_seq):
        seq = entry.seq
        if seq != expected_seq:
            gap = f"entry {expected_seq} is missing" if seq > expected_seq else f"entry {seq} is out of order"
            return Verification(False, checked, head.anchor_seq + 1, seq, expected_seq, gap + " (deleted)")
        if entry.prev_hash != prev:
            return Verification(
                False, checked, head.anchor_seq + 1, seq, seq,
                f"{_who(entry)}: it does not follow entry {seq - 1} (previous hash {entry.prev_hash[:12]}..., "
                f"expected {prev[:12]}...)",
            )  # fmt: skip
        try:
            recomputed = entry_hash({n: getattr(entry, n) for n in FIELDS}, entry.prev_hash)
        except ValueError:
            recomputed = ""
        if recomputed != entry.hash:
            return Verification(
                False, checked, head.anchor_seq + 1, seq, seq,
                f"{_who(entry)}: its content does not match its hash (changed after it was written)",
            )  # fmt: skip
        prev = entry.hash
        expected_seq += 1
        checked += 1
    last = expected_seq - 1
    if last != head.seq or prev != head.hash:
        if last < head.seq:
            problem = (
                f"the chain ends at entry {last} but its head is entry {head.seq}: later entries were deleted"
            )
            return Verification(False, checked, head.anchor_seq + 1, last, last + 1, problem)
        problem = f"entries after {head.seq} were added outside the chain (its head is entry {head.seq})"
        return Verification(False, checked, head.anchor_seq + 1, last, head.seq + 1, problem)
    return Verification(True, checked, head.anchor_seq + 1 if checked else 0, last)


def _who(entry: AuditEntry) -> str:
    return (
        f"entry {entry.seq} ({entry.at} {entry.actor} {entry.action} {entry.object_type} {entry.object_id})"
    )


def row(entry: AuditEntry) -> dict[str, Any]:
    """An entry as exported: before and after as JSON values, the hashes as written."""
    out: dict[str, Any] = {name: getattr(entry, name) for name in EXPORT_FIELDS}
    out["before"] = json.loads(entry.before)
    out["after"] = json.loads(entry.after)
    return out


async def export_rows(
    session: AsyncSession, since: datetime | None = None, until: datetime | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Entries with ``since <= at < until``, in chain order."""
    last = 0
    while True:
        query = select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(PAGE)
        if since is not None:
            query = query.where(AuditEntry.at >= timestamp(since))
        if until is not None:
            query = query.where(AuditEntry.at < timestamp(until))
        page = (await session.scalars(query)).all()
        for entry in page:
            yield row(entry)
        if len(page) < PAGE:
            return
        last = page[-1].seq


def as_jsonl(rows: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for r in rows:
        yield json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n"


def csv_header() -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(EXPORT_FIELDS)
    return buffer.getvalue()


def as_csv_line(r: Mapping[str, Any]) -> str:
    """One CSV line; before and after as compact JSON text in their cells."""
    buffer = io.StringIO()
    cells = [canonical(r[name]) if name in ("before", "after") else r[name] for name in EXPORT_FIELDS]
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue()


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


_DELETE_GUARD = {
    "sqlite": (
        "DROP TRIGGER audit_append_only_delete",
        "CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit "
        "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END",
    ),
    "postgresql": (
        "DROP TRIGGER audit_append_only_delete ON audit",
        "CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit "
        "FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    ),
}


async def purge_before(session: AsyncSession, cutoff: datetime) -> tuple[int, int]:
    """Delete the entries written before ``cutoff`` (the oldest part of the chain, in one piece)
    and anchor the chain after them; ``(entries deleted, new anchor seq)``. Inside
    :meth:`Store.writing`; the caller decides the cutoff from the retention, never later."""
    head = await session.get(AuditHead, 1)
    assert head is not None
    # Only a run of old entries from the start: an entry written after the cutoff (a clock
    # that stepped back) keeps every entry after it.
    first_young = await session.scalar(
        select(func.min(AuditEntry.seq)).where(AuditEntry.at >= timestamp(cutoff))
    )
    last_old = first_young - 1 if first_young is not None else head.seq
    if not last_old or last_old <= head.anchor_seq:
        return 0, head.anchor_seq
    anchor = await session.get(AuditEntry, last_old)
    assert anchor is not None
    drop, create = _DELETE_GUARD[session.get_bind().dialect.name]
    await session.execute(text(drop))
    deleted = int(
        await session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.seq <= last_old))
        or 0
    )
    await session.execute(delete(AuditEntry).where(AuditEntry.seq <= last_old))
    await session.execute(text(create))
    head.anchor_seq = anchor.seq
    head.anchor_hash = anchor.hash
    await session.flush()
    return deleted, anchor.seq


__all__ = ["GENESIS", "Verification", "append", "export_rows", "purge_before", "verify"]
