"""Screening cost per report with 1,000 and 10,000 listed names (``make bench-screening``).

    python benchmarks/screening.py [--reports 300]

Builds an index of generated names (services/sanctions/synthetic.py, fixed seed) plus the
project's small UN fixture list, then screens a set of reports like the ones the pipeline sees
(an importer, an exporter, a vessel and a paragraph of news text naming a few organisations, some
in Hangul) and prints the time, names screened per second, candidate comparisons and postings
read per report for each size. If the index scanned the list, the cost would grow tenfold;
blocking keeps it nearly flat. Then single names (Latin, Hangul, Chinese) against the labelled
set's lists, as one request to a screening API would be: names per second on one core, beside
yente's published 4-30 requests per second per vCPU. Results are also written to
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
from services.sanctions.evaluation import load_variants
from services.sanctions.index import PARTY_KINDS, ScreeningIndex
from services.sanctions.lists import read_list
from services.sanctions.matcher import PartyScreen
from services.sanctions.synthetic import generated_entries

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "sanctions" / "un-dprk-sample.xml"
REAL = ROOT.parent / "shared" / "data" / "un-sc-consolidated-2020-03-20.xml"
EXTRA = ROOT / "benchmarks" / "data" / "eval-extra.ftm.json"

TEXT = (
    "Sources in {city} said that {org} received {n} second-hand lathes and two CNC cutting machines "
    "through the {crossing} crossing last month. The machines were ordered by {other} and shipped by "
    "{shipper}; Chinese technicians from {city} Heavy Industry travelled in to install them. "
    "현지 소식통에 따르면 {hangul}이 기계를 받았다. The tanker IMO No. {imo} took the fuel."
)
HANGUL = ["조선련하기계합영회사", "청천강해운회사", "신의주농기계작업소", "단동신원무역", "대동신용은행"]
YENTE = "yente (OpenSanctions' screening API) publishes 4-30 requests per second per vCPU"


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
                    hangul=rng.choice(HANGUL),
                    imo=rng.choice(["8660313", "9074729", "8660314"]),
                ),
                vessels=[{"name": "SEA STAR", "imo": "9074729"}] if rng.random() < 0.3 else [],
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
    comparisons = hits = names = 0
    started = time.perf_counter()
    for report in batch:
        screen = PartyScreen(index, report)
        hits += len(screen.found())
        comparisons += screen.comparisons
        names += sum(1 for _ in screen.names()) + sum(1 for _ in screen.vessels())
    elapsed = time.perf_counter() - started
    return {
        "listed_entries": len(entries),
        "listed_names": len(index.names),
        "build_seconds": round(built, 3),
        "ms_per_report": round(elapsed / count * 1000, 3),
        "names_per_report": round(names / count, 1),
        "names_per_second": round(names / elapsed),
        "comparisons_per_report": round(comparisons / count, 1),
        "matches_per_report": round(hits / count, 2),
    }


def single_names(rounds: int = 3) -> dict[str, float]:
    """The labelled set's names, one search each, against its lists (the real UN list when
    ../shared is there): names per second on one core, per script."""
    un = REAL if REAL.exists() else FIXTURE
    index = ScreeningIndex.build([*read_list(un, "un-sc").entries, *read_list(EXTRA, "eval-extra").entries])
    variants = load_variants(ROOT / "benchmarks" / "party_variants.yaml")
    out: dict[str, float] = {}
    for group in ("latin", "hangul", "chinese", "vessel"):
        chosen = [v for v in variants if v.group == group]
        started = time.perf_counter()
        for _ in range(rounds):
            for v in chosen:
                if group == "vessel":
                    index.search_vessel(v.name, v.imo, 0.9)
                else:
                    index.search(v.name, 0.9, kinds=PARTY_KINDS)
        out[group] = round(len(chosen) * rounds / (time.perf_counter() - started))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=300)
    args = parser.parse_args()
    results = {size: run(size, args.reports) for size in (1_000, 10_000)}
    small, large = results[1_000], results[10_000]
    ratio = large["ms_per_report"] / small["ms_per_report"]
    singles = single_names()
    print(
        f"screening cost per report ({args.reports} reports; importer, exporter, vessels, text in two scripts)"
    )
    print(
        f"  {'listed':>8} {'names':>7} {'ms/report':>10} {'names/rep':>9} {'names/s':>8} {'comparisons':>12} {'build s':>8}"
    )
    for size, r in results.items():
        print(
            f"  {size:>8,} {r['listed_names']:>7,} {r['ms_per_report']:>10.3f} {r['names_per_report']:>9.1f} "
            f"{r['names_per_second']:>8,} {r['comparisons_per_report']:>12.1f} {r['build_seconds']:>8.3f}"
        )
    print(f"  10x the list -> {ratio:.2f}x the cost per report (a scan of every name would be about 10x)")
    print("single names on one core (the labelled set's lists), names per second:")
    print("  " + ", ".join(f"{group} {rate:,}" for group, rate in singles.items()))
    print(f"  {YENTE}; one name here is one request there")
    out = ROOT / "benchmarks" / "results" / "screening.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "reports": args.reports,
                "python": platform.python_version(),
                "results": results,
                "ratio": round(ratio, 2),
                "single_names_per_second": singles,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
