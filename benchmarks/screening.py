"""Screening cost per report with 1,000 and 10,000 listed names (``make bench-screening``).

    python benchmarks/screening.py [--reports 300]

Builds an index of generated names (services/sanctions/synthetic.py, fixed seed) plus the
project's small UN fixture list, then screens a set of reports like the ones the pipeline sees
(an importer, an exporter and a paragraph of news text naming a few organisations) and prints the
time, candidate comparisons and postings read per report for each size. If the index scanned the
list, the cost would grow tenfold; blocking keeps it nearly flat. Results are also written to
benchmarks/results/screening.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

from schemas.report import ImportReport
from services.sanctions.index import ScreeningIndex
from services.sanctions.lists import read_list
from services.sanctions.matcher import PartyScreen
from services.sanctions.synthetic import generated_entries

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "sanctions" / "un-dprk-sample.xml"

TEXT = (
    "Sources in {city} said that {org} received {n} second-hand lathes and two CNC cutting machines "
    "through the {crossing} crossing last month. The machines were ordered by {other} and shipped by "
    "{shipper}; Chinese technicians from {city} Heavy Industry travelled in to install them."
)


def reports(count: int, listed: list[str], seed: int = 7) -> list[ImportReport]:
    rng = random.Random(seed)
    plain = [
        "Dandong Xinyuan Trading Co., Ltd.",
        "Liaoning Machinery Import & Export Co",
        "Hunchun Border Trade Co",
    ]
    made = []
    for n in range(count):
        org = rng.choice(listed) if rng.random() < 0.3 else rng.choice(plain)
        made.append(
            ImportReport(
                report_id=f"bench-{n}",
                source="bench",
                importer=rng.choice(listed) if rng.random() < 0.2 else "Sinuiju Farm Machinery Station",
                exporter=rng.choice(plain),
                text=TEXT.format(
                    city=rng.choice(["Dandong", "Hunchun", "Changbai"]),
                    org=org,
                    n=rng.randint(2, 40),
                    crossing=rng.choice(["Dandong-Sinuiju", "Hunchun-Rason", "Changbai-Hyesan"]),
                    other=rng.choice(plain),
                    shipper=rng.choice(listed + plain),
                ),
            )
        )
    return made


def run(size: int, count: int) -> dict[str, float]:
    entries = read_list(FIXTURE, "un-sc").entries + generated_entries(size - 20)
    started = time.perf_counter()
    index = ScreeningIndex.build(entries)
    built = time.perf_counter() - started
    listed = [e.name for e in entries[:: max(1, len(entries) // 200)]]
    batch = reports(count, listed)
    for report in batch[:20]:  # warm caches
        PartyScreen(index, report).found()
    comparisons = hits = 0
    started = time.perf_counter()
    for report in batch:
        screen = PartyScreen(index, report)
        hits += len(screen.found())
        comparisons += screen.comparisons
    elapsed = time.perf_counter() - started
    return {
        "listed_entries": len(entries),
        "listed_names": len(index.names),
        "build_seconds": round(built, 3),
        "ms_per_report": round(elapsed / count * 1000, 3),
        "comparisons_per_report": round(comparisons / count, 1),
        "matches_per_report": round(hits / count, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=300)
    args = parser.parse_args()
    results = {size: run(size, args.reports) for size in (1_000, 10_000)}
    small, large = results[1_000], results[10_000]
    ratio = large["ms_per_report"] / small["ms_per_report"]
    print(f"screening cost per report ({args.reports} reports; importer, exporter, text)")
    print(f"  {'listed':>8} {'names':>7} {'ms/report':>10} {'comparisons':>12} {'build s':>8}")
    for size, r in results.items():
        print(
            f"  {size:>8,} {r['listed_names']:>7,} {r['ms_per_report']:>10.3f} "
            f"{r['comparisons_per_report']:>12.1f} {r['build_seconds']:>8.3f}"
        )
    print(f"  10x the list -> {ratio:.2f}x the cost per report (a scan of every name would be about 10x)")
    out = ROOT / "benchmarks" / "results" / "screening.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "reports": args.reports,
                "python": platform.python_version(),
                "results": results,
                "ratio": round(ratio, 2),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
