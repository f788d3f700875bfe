"""CPU a burst notify worker spends per report, for one or more checkouts side by side.

The alerts of N of the latency bench's reports (the shipped rules, evaluated in this process) are
put on a fresh stream; ``tradewatch worker notify --burst`` of each checkout drains them to a
receiver answering 200 in another process, with the latency bench's immediate subscription. The
worker's CPU (user + system, from ``wait4``), less that of the same worker starting and stopping
on an empty stream, is divided by N. Checkouts run alternately, ``rounds`` times, so a noisy
machine hits each alike: compare them within one run.

``python -m benchmarks.notify_cpu [--reports N] [--rounds R] [--coalesce K] CHECKOUT [CHECKOUT ...]``
(a checkout: a directory holding this project, e.g. ``git worktree add /tmp/base main``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis

from benchmarks import bench_latency, common
from schemas.report import ImportReport
from services.rules.engine import evaluate
from services.rules.loader import load_ruleset
from services.server import free_port

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Ok(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
"""


def alert_payloads(reports: int) -> list[str]:
    rules = load_ruleset(
        [common.ROOT / "config/rules.yaml"], common.CATALOG, common.ROOT / "config/rates.yaml"
    )
    maker = common.ReportMaker(seed=3)
    now = datetime.now(UTC)
    out = []
    for n in range(reports):
        report = maker.report(n, prefix="cpu")
        report["destination_country"] = "KP"
        out += [
            a.model_dump_json(exclude_none=True)
            for a in evaluate(ImportReport.model_validate(report), rules, now)
        ]
    return out


def drain(
    checkout: Path, url: str, payloads: list[str], coalesce: int | None, port: int, tmp: Path
) -> dict[str, float]:
    namespace = f"twcpu-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for payload in payloads:
        pipe.xadd(f"{namespace}:alerts", {"alert": payload})
    if payloads:
        pipe.execute()
    channels, subs = tmp / "channels.yaml", tmp / "subscriptions.yaml"
    channels.write_text(f"version: 1\nurls:\n  - json://127.0.0.1:{port}/hook:\n      - tag: hook\n")
    subs.write_text(bench_latency.subscriptions(coalesce))
    env = common.worker_env(
        url, namespace, tmp / "data", TRADEWATCH_CHANNELS_FILE=str(channels), TRADEWATCH_SUBSCRIPTIONS_FILE=str(subs),
        PYTHONPATH=str(checkout),
    )  # fmt: skip
    started = time.perf_counter()
    with (tmp / f"{namespace}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "worker", "notify", "--burst"],
            env=env, cwd=checkout, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    if status:
        raise RuntimeError(f"notify worker of {checkout} exited {status}")
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--reports", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--coalesce", type=int, default=None)
    args = parser.parse_args()
    payloads = alert_payloads(args.reports)
    print(f"{len(payloads)} alerts of {args.reports} reports")
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    runs: dict[Path, list[dict[str, float]]] = {c: [] for c in args.checkouts}
    try:
        with common.fresh_server() as url, tempfile.TemporaryDirectory(prefix="twcpu-") as tmp:
            for _ in range(args.rounds):
                for checkout in args.checkouts:
                    runs[checkout].append(
                        drain(checkout.resolve(), url, payloads, args.coalesce, port, Path(tmp))
                    )
    finally:
        receiver.kill()
    for checkout, results in runs.items():
        ms = [1000 * r["cpu_s"] / args.reports for r in results]
        print(
            f"{checkout}: CPU ms/report {', '.join(f'{m:.3f}' for m in ms)} (median {common.median(ms):.3f})"
        )


if __name__ == "__main__":
    main()
