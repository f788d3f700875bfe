"""``make bench``: every benchmark against a fresh loopback server, a table, benchmarks/results.json.

``python -m benchmarks.run [--quick] [--only rules,latency,latency_unsaturated,latency_uncoalesced,latency_batched,ingest,scaleout,memory]``. ``--quick``
runs tiny inputs (the test suite's smoke run); figures from it mean nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import bench_ingest, bench_latency, bench_memory, bench_rules, bench_scaleout, common

GOALS = {"shipped": "shipped >= 10% of no-op (issue 19)", "repeat": "repeat >= 40% of no-op (issue 19)"}
RESULTS = Path(__file__).with_name("results.json")

FULL: dict[str, dict[str, Any]] = {
    "rules": {"reports": 50_000, "repeats": 3},
    "latency": {"rate": 500, "seconds": 30},
    "latency_unsaturated": {"rate": 100, "seconds": 30},
    "latency_uncoalesced": {"rate": 500, "seconds": 30, "coalesce": 1},
    "latency_batched": {"rate": 500, "seconds": 30, "coalesce": 100},
    "ingest": {"rows": 1_000_000, "small": 100_000},
    "scaleout": {"reports": 20_000, "repeats": 3},
    "memory": {},
}
QUICK: dict[str, dict[str, Any]] = {
    "rules": {"reports": 300, "repeats": 1, "extras": (5, 20)},
    "latency": {"rate": 50, "seconds": 1, "settle": 5},
    "latency_unsaturated": {"rate": 20, "seconds": 1, "settle": 5},
    "latency_uncoalesced": {"rate": 50, "seconds": 1, "settle": 5, "coalesce": 1},
    "latency_batched": {"rate": 50, "seconds": 1, "settle": 5, "coalesce": 100},
    "ingest": {"rows": 500, "small": 50},
    "scaleout": {"reports": 300, "repeats": 1},
    "memory": {"settle": 2.0},
}
RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "rules": bench_rules.run,
    "latency": bench_latency.run,
    "latency_unsaturated": bench_latency.run,
    "latency_uncoalesced": bench_latency.run,
    "latency_batched": bench_latency.run,
    "ingest": bench_ingest.run,
    "scaleout": bench_scaleout.run,
    "memory": bench_memory.run,
}


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(measure, figure, beside, ratio, goal) lines for the table."""
    out: list[tuple[str, str, str, str, str]] = []
    if r := results.get("rules"):
        rate = r["rates"]
        for name, value in rate.items():
            if name in bench_rules.FLOORS:
                continue
            out.append((f"rules {name}, reports/s", f"{value:,.0f}", f"no-op {rate['noop']:,.0f}; raw {rate['raw']:,.0f}",
                        f"{value / rate['noop']:.1%} of no-op", GOALS.get(name, "")))  # fmt: skip
        for name, goal in r["goals"].items():
            if not name.endswith("/ noop"):
                out.append((f"rules {name}", f"{r['ratios'][name]:.2f}", "", "", f">= {goal}"))
    for key in ("latency", "latency_unsaturated", "latency_uncoalesced", "latency_batched"):
        if r := results.get(key):
            lat, floor, cpu = r["latency_ms"], r["floor_ms"], r["cpu_ms_per_report"]
            how = "".join((
                f", {r['concurrency']} sends/channel" if r.get("concurrency", 1) != 1 else "",
                ", no coalescing" if r.get("coalesce") == 1 else "",
                f", coalesce {r['coalesce']}" if (r.get("coalesce") or 1) > 1 else "",
            ))  # fmt: skip
            out.append((f"latency at {r['rate']:.0f}/s for {r['seconds']:.0f}s{how}, ms p50/p95/p99",
                        f"{lat['p50']}/{lat['p95']}/{lat['p99']}", f"XADD->XREADGROUP {floor['p50']}/{floor['p95']}/{floor['p99']}",
                        f"{r['delivered']}/{r['published']} delivered, {r['requests']} requests; "
                        f"CPU ms/report rules {cpu['rules']}, notify {cpu['notify']}, server {cpu['server']}", "p99 < 100 ms"))  # fmt: skip
    if r := results.get("ingest"):
        sizes = [k for k in r if k.isdigit()]
        for k in sizes:
            out.append((f"ingest {int(k):,} rows ({r['source']}), rows/s", f"{r[k]['rows_per_s']:,.0f}", "",
                        f"peak RSS {r[k]['peak_rss_kib'] / 1024:.0f} MiB", ""))  # fmt: skip
        for name, value in r["ratios"].items():
            out.append((f"ingest {name}", f"{value:.2f}", "", "", "memory flat" if "memory" in name else ""))
    if r := results.get("scaleout"):
        rate = r["rates"]
        out.append(("scale-out, rules reports/s", f"{rate['2 processes']:,.0f} (2 procs)", f"{rate['1 process']:,.0f} (1 proc)",
                    f"{r['ratios']['2 / 1']:.2f}x", ">= 1.6x"))  # fmt: skip
    if r := results.get("memory"):
        for stage, kib in r["idle_rss_kib"].items():
            out.append((f"RSS {stage} worker idle", f"{kib / 1024:.0f} MiB", "", "", ""))
    for key, label in (
        ("rules", "rules (draining, shipped)"),
        ("latency", "rules and notify at the steady rate"),
    ):
        if r := results.get(key):
            if key == "rules":
                peak = max(run["peak_rss_kib"] for run in r["runs"]["shipped"])
                out.append((f"RSS peak, {label}", f"{peak / 1024:.0f} MiB", "", "", ""))
            else:
                for stage, kib in r["rss_kib"]["peak_under_load"].items():
                    out.append((f"RSS peak {stage}, {label}", f"{kib / 1024:.0f} MiB", "", "", ""))
    return out


def table(results: dict[str, Any]) -> str:
    header = ("measure", "figure", "floor (same run)", "ratio", "goal")
    lines = [header, *rows(results)]
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    text = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    text.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny inputs: a smoke run")
    parser.add_argument("--only", default=",".join(FULL), help="comma-separated: " + ",".join(FULL))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    params = QUICK if args.quick else FULL
    results: dict[str, Any] = {"machine": common.machine(), "quick": args.quick, "started": time.time()}
    for name in args.only.split(","):
        began = time.monotonic()
        print(f"running {name} ...", flush=True)
        results[name] = RUNNERS[name](**params[name])
        results[name]["wall_seconds"] = round(time.monotonic() - began, 1)
        args.output.write_text(json.dumps(results, indent=2))  # what is done so far survives a crash
    print(table(results))
    print(f"\nmachine: {json.dumps(results['machine'])}\nwritten: {args.output}")


if __name__ == "__main__":
    main()
