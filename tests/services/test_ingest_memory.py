"""Memory does not grow with the file: four times the rows, about the same peak (tracemalloc).

``ingest_file`` is called exactly as the CLI and the inbox call it: the tally keeps counts and a
bounded sample of report ids, never one id per published row.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from services.ingest.files import ingest_file
from services.ingest.publisher import SAMPLE_IDS, Publisher
from services.ingest.registry import Sources
from services.runtime import Context
from tests.fixtures.comtrade import COMTRADE_HEADER, comtrade_row


def write_rows(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write(COMTRADE_HEADER + "\n")
        for n in range(rows):
            out.write(comtrade_row("X", str(847710 + n % 90), f"Machines {n}", str(n % 50 + 1), str(n + 100),
                                   period=f"{1000 + n // 12}{n % 12 + 1:02d}") + "\n")  # fmt: skip
    return path


async def peak_of(ctx: Context, path: Path) -> int:
    sources = Sources.from_settings(ctx.settings)
    publisher = Publisher(ctx.redis, ctx.settings.streams, 600)
    tracemalloc.start()
    try:
        tally = await ingest_file(path, sources.get("comtrade"), publisher)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tally.published + tally.duplicates == tally.read  # the large file starts with the small one
    assert tally.published > 0
    assert len(tally.sample_ids) == min(tally.published, SAMPLE_IDS)
    return peak


@pytest.mark.slow  # 50,000 rows read and published
async def test_peak_memory_does_not_grow_with_the_file(ctx: Context, tmp_path: Path) -> None:
    small = await peak_of(ctx, write_rows(tmp_path / "small.csv", 10_000))
    large = await peak_of(ctx, write_rows(tmp_path / "large.csv", 40_000))
    # Holding the rows, the reports or one id per report (30,000 more ids, about 2.5 MB) would
    # put the large peak far above the small one; a batch in flight is the same in both.
    assert large < small * 1.2, (small, large)
