"""Peak memory of `tradewatch ingest` on large generated files: it must not grow with the file.

    .venv/bin/python benchmarks/ingest_memory.py [ROWS ...]     (default: 25000 100000 400000)

For each size it writes a UN Comtrade CSV of that many rows, ingests it through the comtrade
mapping into a real server (TRADEWATCH_REDIS_URL, or an embedded Valkey started here) in a fresh
namespace, and prints the file size, the tracemalloc peak (Python allocations) and the time.
Results are appended to benchmarks/ingest_memory.results.txt.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services import server
from services.ingest.files import ingest_file
from services.ingest.publisher import Publisher
from services.ingest.registry import Sources
from services.settings import Settings

HEADER = (
    "refPeriodId,refYear,refMonth,period,reporterCode,reporterISO,reporterDesc,flowCode,partnerCode,"
    "partnerISO,partner2Code,classificationCode,cmdCode,cmdDesc,aggrLevel,isLeaf,customsCode,motCode,"
    "qtyUnitCode,qty,altQty,netWgt,grossWgt,cifvalue,fobvalue,primaryValue\n"
)


def generate(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for n in range(rows):
            out.write(
                f"20260101,2026,1,2026{n % 12 + 1:02d},156,CHN,China,X,408,PRK,0,H6,{847710 + n % 90},"
                f'"Machines, item {n}",6,True,C{n:08d},0,5,{n % 50 + 1},0,1200,1300,,{n * 7 + 100},{n * 7 + 100}\n'
            )


async def measure(settings: Settings, path: Path) -> tuple[int, float, dict[str, int]]:
    sources = Sources.from_settings(settings)
    endpoint = server.resolve(settings)
    redis = server.client(endpoint)
    try:
        publisher = Publisher(redis, settings.streams, 3600)
        tracemalloc.start()
        started = time.perf_counter()
        tally = await ingest_file(path, sources.get("comtrade"), publisher)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        keys = [k async for k in redis.scan_iter(match=f"{settings.namespace}:*", count=5000)]
        for start in range(0, len(keys), 5000):
            await redis.delete(*keys[start : start + 5000])
        return peak, seconds, tally.as_dict()
    finally:
        await redis.aclose()
        endpoint.close()


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [25_000, 100_000, 400_000]
    results = Path(__file__).with_suffix(".results.txt")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            path = Path(tmp) / f"comtrade-{rows}.csv"
            generate(path, rows)
            settings = Settings(
                namespace=f"bench-{uuid.uuid4().hex[:8]}",
                data_dir=Path(os.environ.get("TRADEWATCH_DATA_DIR", tmp)),
            )
            peak, seconds, tally = asyncio.run(measure(settings, path))
            line = (
                f"rows={rows} file_mb={path.stat().st_size / 1e6:.1f} peak_mb={peak / 1e6:.2f} "
                f"seconds={seconds:.1f} rows_per_s={rows / seconds:.0f} {tally}"
            )
            print(line, flush=True)
            lines.append(line)
            path.unlink()
    with results.open("a", encoding="utf-8") as out:
        out.write(f"# {time.strftime('%Y-%m-%d %H:%M')} python {sys.version.split()[0]}, tracemalloc on\n")
        out.writelines(line + "\n" for line in lines)


if __name__ == "__main__":
    main()
