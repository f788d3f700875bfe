"""Backtest throughput: N synthetic reports archived, then replayed through the shipped rules and a
proposed change (vehicles lowered to medium, surges at two reports) with 1 and with 2 processes.

    .venv/bin/python -m benchmarks.backtest --reports 20000 --workers 1,2

The store is an SQLite file in a temporary folder unless ``--database`` names another (a
PostgreSQL URL: the archive is written under a schema of its own, dropped afterwards). The
reports come from ``benchmarks.common.ReportMaker`` (several items each, three languages), spread
over a year of event time. Time counts the whole call: reading the archive, starting the worker
processes and loading the rules in each, evaluating, comparing. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import common
from schemas.report import ImportReport
from services.history.backtest import RuleFiles, backtest
from services.store import Store
from services.store import archive as reports
from services.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "config/rules.yaml"
CATALOG = ROOT / "config/catalog.yaml"
RATES = ROOT / "config/rates.yaml"


def proposed_rules(folder: Path) -> Path:
    text = RULES.read_text(encoding="utf-8")
    text = text.replace(
        "title: Transportation vehicles to the DPRK (HS 86-89)\n    severity: high",
        "title: Transportation vehicles to the DPRK (HS 86-89)\n    severity: medium",
    )
    text = text.replace(
        "frequency: {count: 3, window: 7d, per: [crossing]}",
        "frequency: {count: 2, window: 7d, per: [crossing]}",
    )
    path = folder / "proposed.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def archive_synthetic(store: Store, n: int) -> float:
    maker = common.ReportMaker(seed=7)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    received = datetime(2026, 3, 1, tzinfo=UTC)
    began = time.perf_counter()
    for first in range(0, n, 1000):
        batch = []
        for i in range(first, min(n, first + 1000)):
            doc = maker.report(i)
            doc["reported_at"] = (start + timedelta(minutes=int(i * 525_600 / n))).isoformat()
            report = ImportReport.model_validate(doc)
            raw = json.dumps(doc, ensure_ascii=False)
            at = report.reported_at or received
            batch.append(reports.Incoming(report, raw, received, at))
        async with store.writing() as session:
            await reports.archive(session, batch, received)
    return time.perf_counter() - began


async def main(n: int, workers: list[int], database: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = database or f"sqlite:///{folder / 'tradewatch.db'}"
        store = Store(url)
        await upgrade(store)
        try:
            archive_seconds = await archive_synthetic(store, n)
            live = RuleFiles((RULES,), CATALOG, RATES)
            proposed = RuleFiles((proposed_rules(folder),), CATALOG, RATES)
            runs = []
            for w in workers:
                result = await backtest(store, live, proposed, workers=w)
                runs.append(
                    {
                        "workers": w,
                        "reports": result.reports,
                        "seconds": round(result.seconds, 2),
                        "reports_per_second": round(result.reports_per_second, 1),
                        "alerts_live": result.alerts_live,
                        "alerts_proposed": result.alerts_proposed,
                        "alerts_changed": result.alerts_appear
                        + result.alerts_disappear
                        + result.alerts_severity_changed,
                    }
                )
                print(
                    f"{w} process(es): {result.reports} reports in {result.seconds:.1f}s, "
                    f"{result.reports_per_second:,.0f} reports/s "
                    f"({result.alerts_live} alerts live, {result.alerts_proposed} proposed)",
                    flush=True,
                )
        finally:
            await store.dispose()
    out: dict[str, Any] = {
        "benchmark": "backtest",
        "reports": n,
        "database": "sqlite" if database is None else "given",
        "archive_seconds": round(archive_seconds, 2),
        "runs": runs,
        "machine": common.machine(),
    }
    if len(runs) > 1 and runs[0]["reports_per_second"]:
        out["speedup"] = round(runs[-1]["reports_per_second"] / runs[0]["reports_per_second"], 2)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2", help="process counts to try, comma-separated")
    parser.add_argument("--database", default=None, help="a store URL; default: a temporary SQLite file")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args()
    result = asyncio.run(main(args.reports, [int(w) for w in args.workers.split(",")], args.database))
    line = json.dumps(result)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(line)
