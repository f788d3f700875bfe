"""1. Rules stage throughput in burst mode, beside its floors, on one preloaded stream.

For each variant a fresh namespace gets the same N reports, the consumer group is created at 0,
then one process drains it: the raw redis-py loop, the no-op FastStream reader, and
``tradewatch worker rules --burst`` with the shipped pack, +1,000 and +10,000 generated rules, and
with the shipped pack on reports whose item lines repeat (``repeat``: every line drawn from 500,
as customs tables repeat theirs). Throughput is timed from outside (the group's first read to its last ack), so process start
and rule loading are not counted. Each variant runs ``repeats`` times; the median is kept.

``python -m benchmarks.bench_rules [--reports N] [--repeats R] [--only noop,shipped,repeat]
[--checkout PATH ...]``: ``--checkout`` runs the stage variants of other checkouts too (a ``git
worktree`` of the commit before a change), interleaved with this one's, so that a before/after
is measured in the same minutes beside the same floors (``shipped@base``: the checkout's name).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from benchmarks import common

FLOORS = ["raw", "noop"]


def run_one(
    url: str,
    variant: str,
    reports: int,
    batch: int,
    tmp: Path,
    processes: int = 1,
    checkout: Path = common.ROOT,
) -> dict[str, Any]:
    namespace = f"twbench-{uuid.uuid4().hex[:8]}"
    stream = f"{namespace}:reports"
    maker = common.ReportMaker(seed=7)
    made = (
        common.repeating_reports(reports)
        if variant == "repeat"
        else (maker.report(n) for n in range(reports))
    )
    common.preload(url, stream, made)
    client = redis.Redis.from_url(url)
    client.xgroup_create(stream, "rules", id="0")
    log = tmp / f"{variant}-{namespace}.log"
    if variant in ("raw", "noop"):
        args = [sys.executable, "-m", "benchmarks.floors", variant, url, namespace, str(batch)]
        env = common.worker_env(url, namespace, tmp / "data")
    else:
        rules = [str(common.ROOT / "config/rules.yaml")]
        if variant not in ("shipped", "repeat"):
            extra = int(variant.split("-")[1])
            generated = tmp / f"generated-{extra}.yaml"
            if not generated.exists():
                common.write_rules(generated, extra)
            rules.append(str(generated))
        args = common.tradewatch("worker", "rules", "--burst")
        env = common.worker_env(
            url, namespace, tmp / "data", TRADEWATCH_RULES_FILES=",".join(rules),
            TRADEWATCH_BATCH_SIZE=str(batch), TRADEWATCH_POLL_INTERVAL="0.05",
        )  # fmt: skip
    procs = [common.spawn(args, env, log, checkout) for _ in range(processes)]
    try:
        drain = common.watch_drain(url, [stream], "rules", reports, workers=procs)
        peak = max(common.rss_kib(p.pid, "VmHWM") for p in procs)
    finally:
        codes = [p.wait(timeout=600) for p in procs]
    if any(codes):
        raise RuntimeError(f"{variant} exited {codes}: {log.read_text()[-2000:]}")
    alerts = client.xlen(f"{namespace}:alerts") if client.exists(f"{namespace}:alerts") else 0
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    return {
        "rate": round(drain.rate, 1),
        "seconds": round(drain.seconds, 3),
        "alerts": alerts,
        "peak_rss_kib": peak,
    }


def run(
    reports: int = 50_000,
    repeats: int = 3,
    batch: int = 256,
    extras: tuple[int, int] = (1_000, 10_000),
    only: Sequence[str] = (),
    checkouts: Sequence[Path] = (),
) -> dict[str, Any]:
    variants = [*FLOORS, "shipped", "repeat", *(f"plus-{n}" for n in extras)]
    if only:
        variants = [v for v in variants if v in only]
    small, large = (f"plus-{n}" for n in extras)
    # (label, variant, checkout): this checkout's variants, then each other checkout's stage variants.
    plan = [(v, v, common.ROOT) for v in variants]
    plan += [(f"{v}@{c.name}", v, c.resolve()) for c in checkouts for v in variants if v not in FLOORS]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in plan}
    with common.fresh_server() as url, tempfile.TemporaryDirectory(prefix="twbench-rules-") as tmp:
        for _ in range(repeats):
            # Interleaved, so that a burst of load from other users hits every variant alike.
            for label, variant, checkout in plan:
                runs[label].append(run_one(url, variant, reports, batch, Path(tmp), checkout=checkout))
    rate = {v: common.median([r["rate"] for r in runs[v]]) for v in runs}
    ratios = {
        f"{a} / {b}": round(rate[a] / rate[b], 3)
        for a, b in [
            ("shipped", "noop"), ("shipped", "raw"), ("repeat", "noop"), (small, "shipped"), (large, "shipped"),
            *((f"{v}", f"{v}@{c.name}") for c in checkouts for v in ("shipped", "repeat")),
            *((f"{v}@{c.name}", "noop") for c in checkouts for v in ("shipped", "repeat")),
        ]
        if a in rate and b in rate
    }  # fmt: skip
    return {
        "reports": reports,
        "batch_size": batch,
        "repeats": repeats,
        "rates": rate,
        "runs": runs,
        "ratios": ratios,
        "goals": {"shipped / noop": 0.1, "repeat / noop": 0.4, f"{large} / shipped": 0.7},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--only", default="", help="comma-separated variants: raw,noop,shipped,repeat,plus-1000,plus-10000"
    )
    parser.add_argument(
        "--checkout", type=Path, action="append", default=[], help="another checkout to run too"
    )
    args = parser.parse_args()
    only = [v for v in args.only.split(",") if v]
    result = run(args.reports, args.repeats, args.batch, only=only, checkouts=args.checkout)
    print(json.dumps({k: result[k] for k in ("reports", "repeats", "rates", "ratios")}, indent=2))


if __name__ == "__main__":
    main()
