"""Publish reports exactly once, and record what could not become a report.

A report id is published at most once within ``dedup_retention``: one Lua script sets the
seen-marker and adds the entry together, so a crash cannot leave one without the other, and
ingesting the same file, row or article again publishes nothing new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aredis

from schemas.report import ImportReport
from schemas.streams import REPORT_FIELD, StreamNames

MAX_RAW_BYTES = 64_000
SAMPLE_IDS = 20  # report ids a Tally keeps to show: a bounded sample, never one per row

_PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], ARGV[3], 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[4])
end
return false
"""


def content_id(source: str, payload: Any) -> str:
    """A report id for input without an id of its own: the same content, the same id."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return f"{source}-{hashlib.sha256(canonical.encode()).hexdigest()[:20]}"


@dataclass
class Tally:
    """Counts, and the first SAMPLE_IDS published report ids: its size does not grow with the input."""

    read: int = 0
    published: int = 0
    duplicates: int = 0
    rejected: int = 0
    sample_ids: list[str] = field(default_factory=list)

    def published_one(self, report_id: str) -> None:
        self.published += 1
        if len(self.sample_ids) < SAMPLE_IDS:
            self.sample_ids.append(report_id)

    def add(self, other: Tally) -> None:
        self.read += other.read
        self.published += other.published
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.sample_ids += other.sample_ids[: max(0, SAMPLE_IDS - len(self.sample_ids))]

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "published": self.published,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


class Publisher:
    def __init__(self, redis: aredis.Redis, names: StreamNames, retention: float) -> None:
        self.redis = redis
        self.names = names
        self.retention = max(1, int(retention))
        self._script = redis.register_script(_PUBLISH_ONCE)

    async def publish(self, reports: Sequence[ImportReport]) -> list[bool]:
        """Pipelined; True for each report published now, False for one seen before."""
        if not reports:
            return []
        now = datetime.now(UTC).isoformat()
        names = self.names
        async with self.redis.pipeline(transaction=False) as pipe:
            for report in reports:
                rid = report.report_id
                args: list[str | int] = [
                    self.retention,
                    REPORT_FIELD,
                    now,
                    report.model_dump_json(exclude_none=True),
                ]
                if not names.is_partitioned:
                    keys = [names.key("seen", "report", rid), names.reports]
                    await self._script(keys=keys, args=args, client=pipe)
                    continue
                # The seen key carries its partition's hash tag: both keys on one slot.
                p = names.partition(rid)
                keys = [names.key("seen", "report", names.tag(p), rid), names.report_stream(p)]
                pipe.eval(_PUBLISH_ONCE, 2, *keys, *args)  # a cluster pipeline sends scripts by EVAL
            results = await pipe.execute()
        return [r is not None for r in results]

    async def reject(self, source: str, where: str, raw: bytes | str, reason: str) -> None:
        data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
        truncated = len(data) > MAX_RAW_BYTES
        await self.redis.xadd(
            self.names.reports_rejected,
            {
                "source": source,
                "where": where,
                "reason": reason,
                "raw": data[:MAX_RAW_BYTES],
                "raw_truncated": "1" if truncated else "0",
                "at": datetime.now(UTC).isoformat(),
            },
            maxlen=100_000,
            approximate=True,
        )
