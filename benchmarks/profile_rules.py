"""Where a rules worker's CPU goes per report, in one process and without a server.

The work of ``RulesStage.handle`` for each report, phase by phase, on the benchmark's reports:
``decode`` (``decode_report`` of the JSON a producer XADDs), ``examine`` (classifying the items
and testing and explaining the rules), ``settle`` (rules over time, decided by
:class:`MemoryState` in place of the Redis script), ``encode`` (``alert_fields`` of each alert)
and ``log`` (the per-report line, rendered as JSON to /dev/null as a worker renders it to stderr).
Redis round trips are not in it: ``bench_rules.py`` measures the whole stage.

``python -m benchmarks.profile_rules [--reports N] [--repeat K] [--profile] [--rounds R]``:
``--repeat K`` draws every item line from the first K distinct lines (customs tables repeat
theirs); ``--profile`` prints the cProfile top functions. Run it under another checkout with
``--checkout /path/to/checkout`` (its ``services``, this script and reports) for a before/after
in the same machine minutes.
"""

from __future__ import annotations

import os
import sys

# ``--checkout PATH``: profile another checkout's stage (its ``services``) with this script.
if "--checkout" in sys.argv:
    sys.path.insert(0, os.path.abspath(sys.argv[sys.argv.index("--checkout") + 1]))

import argparse
import cProfile
import io
import json
import pstats
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import common
from schemas.streams import REPORT_FIELD
from services import logging as twlogging
from services.logging import get_logger
from services.rules.engine import RuleSet, examine
from services.rules.loader import load_ruleset
from services.rules.temporal import MemoryState, settle
from services.wire import Entry, alert_fields, decode_report

ROOT = common.ROOT


def entries(n: int, repeat: int) -> list[Entry]:
    maker = common.ReportMaker(seed=7)
    made = common.repeating_reports(n, repeat) if repeat else (maker.report(i) for i in range(n))
    return [
        Entry(f"{i}-0", {REPORT_FIELD.encode(): json.dumps(r, ensure_ascii=False).encode()})
        for i, r in enumerate(made)
    ]


def load() -> RuleSet:
    return load_ruleset(
        [ROOT / "config/rules.yaml"], ROOT / "config/catalog.yaml", ROOT / "config/rates.yaml"
    )


def run(ruleset: RuleSet, batch: list[Entry], phases: dict[str, float]) -> int:
    state = MemoryState()
    log = get_logger(stage="rules")
    now = datetime.now(UTC)
    clock = time.thread_time  # CPU time of this thread: other processes on the cores do not count
    alerts_made = 0
    for entry in batch:
        t0 = clock()
        report = decode_report(entry)
        t1 = clock()
        _, verdicts = examine(report, ruleset, now, None)
        t2 = clock()
        alerts = []
        for v in verdicts:
            alert = settle(v.pending, state.decide(v.pending, now)) if v.pending is not None else v.alert
            if alert is not None:
                alerts.append(alert)
        t3 = clock()
        for alert in alerts:
            alert_fields(alert)
        t4 = clock()
        log.info(
            "report evaluated",
            entry_id=entry.id,
            report_id=report.report_id,
            ruleset_version=ruleset.version,
            alerts=[
                {"alert_id": a.alert_id, "rule_id": a.rule_id, "severity": a.severity.value} for a in alerts
            ],
            ms=round((t4 - t0) * 1000, 3),
        )
        t5 = clock()
        for name, took in zip(("decode", "examine", "settle", "encode", "log"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):  # fmt: skip
            phases[name] += took
        alerts_made += len(alerts)
    return alerts_made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", type=int, default=5_000)
    parser.add_argument(
        "--repeat", type=int, default=0, help="distinct item lines (0: as the bench makes them)"
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--checkout", type=Path, help="another checkout whose stage to profile")
    args = parser.parse_args()
    twlogging.configure("info", "json")
    sys.stderr = open("/dev/null", "w")  # noqa: SIM115 - the log lines are rendered, not kept
    batch = entries(args.reports, args.repeat)
    for _ in range(args.rounds):
        phases = dict.fromkeys(("decode", "examine", "settle", "encode", "log"), 0.0)
        profiler = cProfile.Profile() if args.profile else None
        ruleset = load()  # a fresh rule set each round: its memos start empty, as a worker's do
        began = time.perf_counter()
        if profiler:
            profiler.enable()
        alerts = run(ruleset, batch, phases)
        if profiler:
            profiler.disable()
        took = time.perf_counter() - began
        per = {k: round(v / len(batch) * 1e6, 1) for k, v in phases.items()}
        print(json.dumps({
            "checkout": str(Path(sys.modules["services"].__path__[0]).parent), "reports": len(batch), "alerts": alerts, "repeat": args.repeat, "us_per_report": per,
            "total_us_per_report": round(sum(phases.values()) / len(batch) * 1e6, 1),
            "reports_per_s": round(len(batch) / took),
        }), flush=True)  # fmt: skip
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
            print(out.getvalue())
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
            print(out.getvalue())


if __name__ == "__main__":
    main()
