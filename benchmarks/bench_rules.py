"""1. Rules stage throughput in burst mode, beside its floors, on one preloaded stream.

For each variant a fresh namespace gets the same N reports, the consumer group is created at 0,
then one process drains it: the raw redis-py loop, the no-op FastStream reader, and
``tradewatch worker rules --burst`` with the shipped pack, +1,000 and +10,000 generated rules.
Throughput is timed from outside (the group's first read to its last ack), so process start
and rule loading are not counted. Each variant runs ``repeats`` times; the median is kept.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import redis

from benchmarks import common

FLOORS = ["raw", "noop"]


def run_one(
    url: str, variant: str, reports: int, batch: int, tmp: Path, processes: int = 1
) -> dict[str, Any]:
    namespace = f"twbench-{uuid.uuid4().hex[:8]}"
    stream = f"{namespace}:reports"
    maker = common.ReportMaker(seed=7)
    common.preload(url, stream, (maker.report(n) for n in range(reports)))
    client = redis.Redis.from_url(url)
    client.xgroup_create(stream, "rules", id="0")
    log = tmp / f"{variant}-{namespace}.log"
    if variant in ("raw", "noop"):
        args = [sys.executable, "-m", "benchmarks.floors", variant, url, namespace, str(batch)]
        env = common.worker_env(url, namespace, tmp / "data")
    else:
        rules = [str(common.ROOT / "config/rules.yaml")]
        if variant != "shipped":
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
    procs = [common.spawn(args, env, log) for _ in range(processes)]
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
    reports: int = 50_000, repeats: int = 3, batch: int = 256, extras: tuple[int, int] = (1_000, 10_000)
) -> dict[str, Any]:
    variants = [*FLOORS, "shipped", *(f"plus-{n}" for n in extras)]
    small, large = (f"plus-{n}" for n in extras)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with common.fresh_server() as url, tempfile.TemporaryDirectory(prefix="twbench-rules-") as tmp:
        for _ in range(repeats):
            # Interleaved, so that a burst of load from other users hits every variant alike.
            for variant in variants:
                runs[variant].append(run_one(url, variant, reports, batch, Path(tmp)))
    rate = {v: common.median([r["rate"] for r in runs[v]]) for v in variants}
    return {
        "reports": reports,
        "batch_size": batch,
        "repeats": repeats,
        "rates": rate,
        "runs": runs,
        "ratios": {
            "shipped / noop": round(rate["shipped"] / rate["noop"], 3),
            "shipped / raw": round(rate["shipped"] / rate["raw"], 3),
            f"{small} / shipped": round(rate[small] / rate["shipped"], 3),
            f"{large} / shipped": round(rate[large] / rate["shipped"], 3),
        },
        "goals": {"shipped / noop": 0.5, f"{large} / shipped": 0.7},
    }


if __name__ == "__main__":
    import json

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    print(json.dumps(run(n, repeats=int(sys.argv[2]) if len(sys.argv) > 2 else 1), indent=2))
