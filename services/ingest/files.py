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
from services.ingest.sources.jsonl import JsonlSource

BATCH = 500

SOURCES: dict[str, Callable[[], FileSource]] = {
    "jsonl": JsonlSource,
}

EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def source_for(name: str) -> FileSource:
    try:
        return SOURCES[name]()
    except KeyError:
        raise ValueError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}") from None


def source_for_path(path: Path) -> str | None:
    """The source of a file dropped in the inbox: ``inbox/<source>/file`` or by extension."""
    if path.parent.name in SOURCES:
        return path.parent.name
    return EXTENSIONS.get(path.suffix.lower())


async def ingest_file(
    path: Path,
    source: FileSource,
    publisher: Publisher,
    progress: Callable[[Tally], None] | None = None,
) -> Tally:
    """Raises UnreadableFile when nothing in the file can be used."""
    tally = Tally()
    batch: list[ImportReport] = []

    async def flush() -> None:
        results = await publisher.publish(batch)
        for report, fresh in zip(batch, results, strict=True):
            if fresh:
                tally.published += 1
                tally.report_ids.append(report.report_id)
            else:
                tally.duplicates += 1
        batch.clear()
        if progress is not None:
            progress(tally)

    for parsed in source.read(path):
        tally.read += 1
        if isinstance(parsed, Rejection):
            tally.rejected += 1
            await publisher.reject(source.name, parsed.where, parsed.raw, parsed.reason)
            continue
        batch.append(parsed)
        if len(batch) >= BATCH:
            await flush()
    await flush()
    return tally


__all__ = ["SOURCES", "UnreadableFile", "ingest_file", "source_for", "source_for_path"]
