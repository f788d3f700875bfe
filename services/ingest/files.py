"""Ingest one file through a source: stream it in batches, publish, reject, count.

Memory stays flat whatever the file's size: the source yields reports lazily and they are
published in pipelined batches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from schemas.report import ImportReport
from services.ingest.publisher import Publisher, Tally
from services.ingest.sources import FileSource, Rejection, UnreadableFile

BATCH = 500


async def ingest_file(
    path: Path,
    source: FileSource,
    publisher: Publisher,
    progress: Callable[[Tally, int], None] | None = None,
) -> Tally:
    """Raises UnreadableFile when nothing in the file can be used.

    ``progress(tally, bytes_read)`` is called after each batch. The tally counts the published
    reports and keeps only a bounded sample of their ids (``Tally.sample_ids``), so its size does
    not grow with the file.
    """
    tally = Tally()
    batch: list[ImportReport] = []
    label = getattr(source, "label", source.name)

    async def flush() -> None:
        results = await publisher.publish(batch)
        for report, fresh in zip(batch, results, strict=True):
            if fresh:
                tally.published_one(report.report_id)
            else:
                tally.duplicates += 1
        batch.clear()
        if progress is not None:
            progress(tally, source.position)

    for parsed in source.read(path):
        tally.read += 1
        if isinstance(parsed, Rejection):
            tally.rejected += 1
            await publisher.reject(label, parsed.where, parsed.raw, parsed.reason)
            continue
        batch.append(parsed)
        if len(batch) >= BATCH:
            await flush()
    await flush()
    return tally


__all__ = ["UnreadableFile", "ingest_file"]
