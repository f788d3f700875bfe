"""3. Ingestion of a large file: rows per second and the ingest process's peak memory, for a small
and a ten times larger file of the same rows, so that growth with the file shows.

The issue asks for a 1,000,000-row Comtrade CSV. The Comtrade source is not on main yet (it is
on the ``ingest`` branch): until it lands, the same rows are measured as JSON Lines through
``tradewatch ingest FILE --source jsonl``. COMTRADE_HOOK: once ``comtrade`` is in
``services.ingest.files.SOURCES``, :func:`comtrade_available` turns true and the same run writes
the file with :func:`write_comtrade_csv` and ingests it with ``--source comtrade``.

Rows/s are timed from the server's side: the stream entry ids carry the milliseconds at which
the first and the last report were added, so process start is not counted. Peak memory is the
ingest process's VmHWM, sampled until it exits.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from benchmarks import common

COMTRADE_COLUMNS = [
    "reporterCode", "reporterISO", "flowCode", "partnerCode", "partnerISO", "period", "cmdCode",
    "cmdDesc", "qtyUnitCode", "qty", "netWgt", "primaryValue", "customsCode", "motCode",
]  # fmt: skip


def comtrade_available() -> bool:
    from services.ingest.registry import BUILTIN

    return "comtrade" in BUILTIN


def write_comtrade_csv(path: Path, rows: int, seed: int = 5) -> None:
    """COMTRADE_HOOK: China's monthly exports to the DPRK, one commodity line per row."""
    rng = random.Random(seed)
    terms = common.catalog_terms()
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(COMTRADE_COLUMNS)
        for n in range(rows):
            _, term, hs, _ = rng.choice([t for t in terms if t[0] == "en"])
            code = hs.ljust(6, "0")[:6]
            period = f"{2010 + n // 120_000 % 16}{1 + n // 10_000 % 12:02d}"
            out.writerow([
                156, "CHN", "X", 408, "PRK", period, code, term, 5, rng.randint(1, 500),
                rng.randint(10, 90_000), rng.randint(100, 5_000_000), f"C{n % 97:02d}", n // 97 % 10,
            ])  # fmt: skip


def write_jsonl(path: Path, rows: int, seed: int = 5) -> None:
    """The same kind of rows as JSON Lines reports: one customs line, one report."""
    maker = common.ReportMaker(seed=seed)
    with path.open("w", encoding="utf-8") as handle:
        for n in range(rows):
            report = maker.report(n, prefix="ingest")
            report["items"] = report["items"][:1]
            report.pop("text", None)
            handle.write(json.dumps(report, ensure_ascii=False) + "\n")


def ingest_once(url: str, path: Path, source: str, tmp: Path) -> dict[str, Any]:
    namespace = f"twbench-{uuid.uuid4().hex[:8]}"
    env = common.worker_env(url, namespace, tmp / "data", TRADEWATCH_LOG_LEVEL="warning")
    proc = subprocess.Popen(
        common.tradewatch("ingest", str(path), "--source", source),
        env=env, cwd=common.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, common.rss_kib(proc.pid, "VmHWM"))
        except (OSError, ValueError):
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"ingest exited {proc.returncode}: {err.decode()[-2000:]}")
    summary = json.loads(out.decode().strip().splitlines()[-1])
    client = redis.Redis.from_url(url)
    stream = f"{namespace}:reports"
    first: Any = client.xrange(stream, count=1)[0][0]  # type: ignore[index]
    last: Any = client.xrevrange(stream, count=1)[0][0]  # type: ignore[index]
    millis = int(last.split(b"-")[0]) - int(first.split(b"-")[0])
    published = int(summary["published"])
    client.delete(stream)
    for keys in _batched(client.scan_iter(match=f"{namespace}:*", count=5000), 5000):
        client.delete(*keys)
    client.close()
    return {
        "rows": summary["read"],
        "published": published,
        "rows_per_s": round(published / (max(millis, 1) / 1000), 1),
        "peak_rss_kib": peak,
    }


def _batched(items: Any, size: int) -> Any:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def run(rows: int = 1_000_000, small: int = 100_000) -> dict[str, Any]:
    source = "comtrade" if comtrade_available() else "jsonl"
    write = write_comtrade_csv if source == "comtrade" else write_jsonl
    results: dict[str, Any] = {"source": source}
    if source == "jsonl":
        results["note"] = "the comtrade source is not on main yet: JSON Lines of the same rows measured"
    with common.fresh_server() as url, tempfile.TemporaryDirectory(prefix="twbench-ingest-") as tmp_:
        tmp = Path(tmp_)
        for n in (small, rows):
            path = tmp / f"rows-{n}.{'csv' if source == 'comtrade' else 'jsonl'}"
            write(path, n)
            results[str(n)] = ingest_once(url, path, source, tmp) | {"file_bytes": path.stat().st_size}
            path.unlink()
    big, little = results[str(rows)], results[str(small)]
    results["ratios"] = {
        f"peak memory {rows} / {small}": round(big["peak_rss_kib"] / little["peak_rss_kib"], 3),
        f"rows/s {rows} / {small}": round(big["rows_per_s"] / little["rows_per_s"], 3),
    }
    results["goals"] = {f"peak memory {rows} / {small}": "about 1 (flat)"}
    return results


if __name__ == "__main__":
    big = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(json.dumps(run(big, max(1, big // 10)), indent=2))
