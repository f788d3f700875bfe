"""2. End-to-end latency: a report XADDed -> the rules worker -> the notify worker -> an HTTP
request received by a local receiver (Apprise ``json://127.0.0.1``), at a steady rate.

Two worker processes (``tradewatch worker rules`` and ``tradewatch worker notify``) run against a
fresh loopback server; one immediate subscription (``group_wait: 0``) sends every alert of
severity info and above to the receiver. Reports are published at ``rate``/s for ``seconds``; a
report's latency is from its XADD to the first request that carries one of its alerts. The floor
beside it is the same path without tradewatch: the time from XADD to an XREADGROUP of the same
entry in a blocked reader (the server and client round trips alone).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis

from benchmarks import common

SUBSCRIPTIONS = """version: 1
subscriptions:
  - name: team
    channels: [hook]
    min_severity: info
    group_wait: 0s
"""


def subscriptions(coalesce: int | None) -> str:
    """The one immediate subscription; ``coalesce``: its own limit (None: the worker's default)."""
    return SUBSCRIPTIONS + (f"    coalesce: {coalesce}\n" if coalesce else "")


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[tuple[float, bytes]] = []
        self.parsed = 0
        self.seen: dict[str, float] = {}
        self.lock = lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")
                # Kept raw and parsed after the run: the receiver shares the cores it measures.
                with lock:
                    outer.bodies.append((at, body))

            def log_message(self, *_: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def first_seen(self) -> dict[str, float]:
        """When each report's first alert arrived, parsing the bodies that came since the last call."""
        with self.lock:
            new, self.parsed = self.bodies[self.parsed :], len(self.bodies)
        for at, body in new:
            try:
                alerts = common.alerts_of(body)
            except (ValueError, KeyError, TypeError):
                continue
            for alert in alerts:
                self.seen.setdefault(alert["report_id"], at)
        return self.seen

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1] * 1000, 2)}


def _behind(client: redis.Redis, stream: str, group: str) -> int:
    """Entries not yet read by the group plus those read but not acked."""
    for info in client.xinfo_groups(stream):
        if info["name"] in (group, group.encode()):
            return int(info.get("lag") or 0) + int(info["pending"])
    return 0


def _server_cpu(client: redis.Redis) -> float:
    """CPU seconds the server has used (user and system), from INFO."""
    info: Any = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def floor_latency(url: str, samples: int = 2000, rate: float = 500) -> dict[str, float]:
    """XADD -> XREADGROUP of a blocked reader in another thread: the round trips alone."""
    stream = f"twbench-floor-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    client.xgroup_create(stream, "g", id="0", mkstream=True)
    got: list[float] = []

    def read() -> None:
        reader = redis.Redis.from_url(url)
        while len(got) < samples:
            reply: Any = reader.xreadgroup("g", "c", {stream: ">"}, count=100, block=1000)
            for _, entries in reply or []:
                now = time.time()
                for entry_id, fields in entries:
                    got.append(now - float(fields[b"t"]))
                    reader.xack(stream, "g", entry_id)
        reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    for _ in range(samples):
        client.xadd(stream, {"t": repr(time.time())})
        time.sleep(1 / rate)
    thread.join(30)
    client.delete(stream)
    client.close()
    return percentiles(got)


def _payloads(total: int) -> Iterator[tuple[str, str]]:
    maker = common.ReportMaker(seed=3)
    for n in range(total):
        report = maker.report(n, prefix="lat")
        # Only reports some rule fires on can be timed at the channel.
        report["destination_country"] = "KP"
        yield report["report_id"], json.dumps(report, ensure_ascii=False)


def run(
    rate: float = 500,
    seconds: float = 30,
    settle: float = 30,
    concurrency: int = 1,
    coalesce: int | None = None,
    checkout: Path = common.ROOT,
) -> dict[str, Any]:
    """``concurrency``: TRADEWATCH_NOTIFY_SEND_CONCURRENCY of the notify worker (1, the default,
    is the safe one: a crash repeats at most one send per channel). ``coalesce``: the
    subscription's ``coalesce`` (None: TRADEWATCH_NOTIFY_COALESCE's default; 1: every message its
    own request; 100: long batches, as a webhook read by a program takes them). ``checkout``:
    whose workers run (another checkout of this project, for a before/after comparison)."""
    with common.fresh_server() as url, tempfile.TemporaryDirectory(prefix="twbench-lat-") as tmp_:
        tmp = Path(tmp_)
        receiver = Receiver()
        namespace = f"twbench-{uuid.uuid4().hex[:8]}"
        channels = tmp / "channels.yaml"
        channels.write_text(
            f"version: 1\nurls:\n  - json://127.0.0.1:{receiver.port}/hook:\n      - tag: hook\n"
        )
        subs = tmp / "subscriptions.yaml"
        subs.write_text(subscriptions(coalesce))
        env = common.worker_env(
            url, namespace, tmp / "data", TRADEWATCH_CHANNELS_FILE=str(channels),
            TRADEWATCH_SUBSCRIPTIONS_FILE=str(subs), TRADEWATCH_RULES_FILES=str(common.ROOT / "config/rules.yaml"),
            TRADEWATCH_NOTIFY_SEND_CONCURRENCY=str(concurrency),
        )  # fmt: skip
        procs = {
            stage: common.spawn(common.tradewatch("worker", stage), env, tmp / f"{stage}.log", checkout)
            for stage in ("rules", "notify")
        }
        client = redis.Redis.from_url(url)
        stream = f"{namespace}:reports"
        try:
            # Both workers up (their groups exist) before the clock starts.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if all(common.group_progress(client, s, g) is not None for s, g in
                       ((stream, "rules"), (f"{namespace}:alerts", "notify"))):  # fmt: skip
                    break
                time.sleep(0.1)
            idle = {stage: common.rss_kib(p.pid) for stage, p in procs.items()}
            cpu_before = {stage: common.cpu_seconds(p.pid) for stage, p in procs.items()}
            cpu_before["server"] = _server_cpu(client)
            published: dict[str, float] = {}
            total = int(rate * seconds)
            # Made before the clock starts: the publisher shares the cores it measures.
            payloads = list(_payloads(total))
            start = time.perf_counter()
            for n, (report_id, payload) in enumerate(payloads):
                target = start + n / rate
                delay = target - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                published[report_id] = time.time()
                client.xadd(stream, {"report": payload})
            achieved = total / (time.perf_counter() - start)
            # Where a backlog builds when the rate is above what the pipeline sustains.
            backlog = {
                "rules": _behind(client, stream, "rules"),
                "notify": _behind(client, f"{namespace}:alerts", "notify"),
            }
            deadline = time.monotonic() + settle
            while time.monotonic() < deadline and len(receiver.first_seen()) < len(published):
                time.sleep(0.1)
            loaded = {stage: common.rss_kib(p.pid, "VmHWM") for stage, p in procs.items()}
            # CPU per report: what each stage costs at this rate (all reports, first to last).
            cpu_after = {stage: common.cpu_seconds(p.pid) for stage, p in procs.items()}
            cpu_after["server"] = _server_cpu(client)
            cpu_ms = {
                stage: round((cpu_after[stage] - cpu_before[stage]) * 1000 / total, 3) for stage in cpu_after
            }
        finally:
            for p in procs.values():
                p.terminate()
            for p in procs.values():
                p.wait(timeout=60)
            receiver.close()
        seen = receiver.first_seen()
        latencies = [seen[r] - t for r, t in published.items() if r in seen]
        result = {
            "rate": rate,
            "concurrency": concurrency,
            "coalesce": coalesce,
            "achieved_rate": round(achieved, 1),
            "seconds": seconds,
            "published": len(published),
            "delivered": len(latencies),
            "requests": len(receiver.bodies),
            "latency_ms": percentiles(latencies),
            "backlog_when_publishing_ended": backlog,
            "floor_ms": floor_latency(url, samples=min(2000, total), rate=rate),
            "rss_kib": {"idle": idle, "peak_under_load": loaded},
            "cpu_ms_per_report": cpu_ms,
            "goals": {"p99_ms": 100},
        }
        client.close()
        return result


def main() -> None:
    """``python -m benchmarks.bench_latency [--rate R] [--seconds S] [--rounds N] [CHECKOUT ...]``:
    with checkouts, their workers take turns, ``rounds`` times, so that the machine's noise hits
    each alike (compare them within one run); without, this checkout once, the whole result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="*", type=Path)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not args.checkouts:
        print(json.dumps(run(args.rate, args.seconds), indent=2))
        return
    for _ in range(args.rounds):
        for checkout in args.checkouts:
            r = run(args.rate, args.seconds, settle=15, checkout=checkout.resolve())
            lat, cpu = r["latency_ms"], r["cpu_ms_per_report"]
            print(
                f"{checkout}: p50/p95/p99 {lat['p50']}/{lat['p95']}/{lat['p99']} ms, "
                f"{r['delivered']}/{r['published']} delivered, CPU ms/report {cpu}",
                flush=True,
            )


if __name__ == "__main__":
    main()
