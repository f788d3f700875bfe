"""Chaos, measured: reports through the whole pipeline while workers are SIGKILLed and the server restarts.

``make chaos`` (or ``python -m benchmarks.chaos --reports 20000``) runs, all on loopback:

- a server of its own (``LocalServer``, append-only with ``appendfsync always``: a SIGKILL of the
  server then loses no acknowledged write, so every loss counted is the pipeline's own);
- a JSON receiver (Apprise ``json://``) in this process, recording each alert id it receives and when;
- worker processes: ``tradewatch worker ingest|rules|notify|records`` (replicas as configured), fed
  by JSON Lines files dropped into the ingest worker's inbox a few at a time; the records workers
  write cases into the embedded store of record (an SQLite file of the run's own);
- a killer: every few seconds (or at set points of progress) one worker is SIGKILLed and a new one
  started in its place; once, the server is SIGKILLed and restarted on the same port and file.

The expected alert ids come from the pure rule engine over the same reports and rule files. At the
end, ``lost`` counts expected ids never received, ``duplicated`` counts receipts beyond the first.
Each duplicate is traced: a repeat is explained when the earlier send has no ``sent`` record in the
deliveries stream (the notifier records right after sending) and a kill (of a notify worker or the
server) happened between the two receipts. The store of record is checked the same way, with no
duplicate excused: every alert id the engine gives must be recorded once (``records.lost``,
``records.doubled``: findings or cases beyond one per alert id and report), and its audit chain
must verify. The last line printed is a JSON object with ``expected``, ``delivered``, ``lost``,
``duplicated``, ``kills``, the tracing figures and ``records``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis

from benchmarks import common
from schemas.report import ImportReport
from schemas.streams import StreamNames
from services.notify.subscriptions import load_subscriptions
from services.rules.engine import explain
from services.rules.loader import load_ruleset
from services.server import LocalServer

ROOT = Path(__file__).resolve().parents[1]
IN_FLIGHT_SLACK = 1.0
START_WAIT = 120.0
"""How long the final stop waits for a new worker to have started (its signal handlers in place)."""
GOODS = [
    "used tractors",
    "excavators",
    "CNC lathes",
    "radio transceivers",
    "X-ray machines",
    "hydraulic presses",
    "diesel generators",
    "harvesters",
    "steel pipes",
    "welding machines",
    "ship engines",
]


@dataclass
class Config:
    reports: int = 20_000
    files: int = 80
    feed_interval: float = 0.5
    kill_every: float = 3.0
    kill_at: list[float] = field(default_factory=list)
    """Kill at these fractions of the expected receipts instead of every ``kill_every`` seconds."""
    server_restart_at: float = 0.4
    partitions: int = 1
    """Stream partitions (``TRADEWATCH_PARTITIONS``): the same scenario with the report and alert
    streams split over several keys."""
    replicas: dict[str, int] = field(
        default_factory=lambda: {"ingest": 1, "rules": 2, "notify": 2, "records": 2}
    )
    reclaim_idle: str = "5s"
    batch_size: int = 100
    timeout: float = 1_080.0
    quiet_for: float = 20.0
    """After everything expected arrived, wait this long for late duplicates before counting."""
    seed: int = 2026
    workdir: Path | None = None


class Receipts:
    """What the channel received: alert id -> receipt times (wall clock, comparable with the
    server's entry ids on this machine)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.count = 0

    def add(self, alert_ids: list[str]) -> None:
        now = time.time()
        with self.lock:
            for alert_id in alert_ids:
                self.times[alert_id].append(now)
            self.count += len(alert_ids)

    def distinct(self, within: set[str]) -> int:
        with self.lock:
            return len(within & self.times.keys())


def _receiver(receipts: Receipts) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                receipts.add([a["alert_id"] for a in common.alerts_of(body)])
                self.send_response(200)
            except (ValueError, KeyError, TypeError):
                self.send_response(400)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="receiver").start()
    return server


def make_reports(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    crossings = ["Dandong-Sinuiju", "Hunchun-Rason", "Changbai-Hyesan"]
    return [
        {
            "schema_version": 1,
            "report_id": f"chaos-{n:06d}",
            "source": "chaos",
            "origin_country": "CN",
            "destination_country": "KP",
            "crossing": rng.choice(crossings),
            "items": [
                {"description": rng.choice(GOODS), "quantity": rng.randint(1, 50)}
                for _ in range(rng.randint(1, 2))
            ],
        }
        for n in range(count)
    ]


def expected_alert_ids(
    reports: list[dict[str, Any]], config_dir: Path, subscribed: bool = True
) -> tuple[set[str], set[str]]:
    """The alert ids that must arrive, and those that may: a rule over time (a surge, a first
    heading) fires depending on what came before and when, which the run does not fix.
    ``subscribed``: only those a subscription wants (the channel's share); else every one (the
    store of record's)."""
    ruleset = load_ruleset(
        [ROOT / "config/rules.yaml"], ROOT / "config/catalog.yaml", ROOT / "config/rates.yaml"
    )
    subscriptions = load_subscriptions(config_dir / "subscriptions.yaml")
    now = datetime.now(UTC)
    wanted: set[str] = set()
    maybe: set[str] = set()
    for raw in reports:
        for verdict in explain(ImportReport.model_validate(raw), ruleset, now):
            alert = verdict.alert or (verdict.pending.build([]) if verdict.pending else None)
            if alert is None or (subscribed and not any(s.wants(alert) for s in subscriptions)):
                continue
            (wanted if verdict.pending is None else maybe).add(alert.alert_id)
    return wanted, maybe


class Records:
    """What the store of record holds: the run's SQLite file, read beside the workers (WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._checked = 0.0
        self._stored: set[str] = set()

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # no tables yet: the first worker is migrating
            return []
        finally:
            conn.close()

    def stored(self, every: float = 1.0) -> set[str]:
        """Alert ids recorded (read at most once a ``every`` seconds)."""
        if time.monotonic() - self._checked >= every:
            self._checked = time.monotonic()
            self._stored = {row[0] for row in self._query("SELECT alert_id FROM findings")}
        return self._stored

    def check(self, expected: set[str], maybe: set[str]) -> dict[str, Any]:
        findings = self._query("SELECT count(*), count(DISTINCT alert_id) FROM findings")
        cases = self._query("SELECT count(*), count(DISTINCT report_id) FROM cases")
        stored = self.stored(every=0)
        (n_findings, distinct), (n_cases, reports) = (findings or [(0, 0)])[0], (cases or [(0, 0)])[0]
        return {
            "expected": len(expected),
            "stored": len(stored & expected),
            "lost": len(expected - stored),
            "doubled": (n_findings - distinct) + (n_cases - reports),
            "unexpected": len(stored - expected - maybe),
            "cases": n_cases,
            "audit": self._verify(),
        }

    def _verify(self) -> str:
        if not self.path.exists():
            return "no store"
        from services.store import Store
        from services.store.audit import verify

        async def go() -> str:
            store = Store(f"sqlite:///{self.path}")
            try:
                async with store.reading() as session:
                    return (await verify(session)).summary()
            finally:
                await store.dispose()

        return asyncio.run(go())


class Fleet:
    """The worker processes; a killed one is replaced at once by a new process (a new consumer)."""

    def __init__(self, env: dict[str, str], logs: Path, replicas: dict[str, int]) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.spawned = 0
        self.log_of: dict[int, Path] = {}
        for stage, count in replicas.items():
            for _ in range(count):
                self.procs.append((stage, self._spawn(stage)))

    def _spawn(self, stage: str) -> subprocess.Popen[bytes]:
        self.spawned += 1
        path = self.logs / f"{self.spawned:03d}-{stage}.log"
        # Logs to files: a pipe nobody drains fills up and stalls the worker.
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "worker", stage],
            env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=path.open("w"),
        )  # fmt: skip
        self.log_of[proc.pid] = path
        return proc

    def _started(self, proc: subprocess.Popen[bytes]) -> bool:
        """The worker logged that it started: FastStream's signal handlers are in place."""
        text = self.log_of[proc.pid].read_text(errors="replace")
        return proc.poll() is not None or ('"component": "runtime"' in text and '"event": "started"' in text)

    def kill_one(self, rng: random.Random, stage: str | None = None) -> str:
        choices = [i for i, (s, _) in enumerate(self.procs) if stage is None or s == stage]
        index = rng.choice(choices)
        name, proc = self.procs[index]
        proc.kill()
        proc.wait()
        self.procs[index] = (name, self._spawn(name))
        return name

    def exited(self) -> list[tuple[str, int]]:
        return [(s, p.returncode) for s, p in self.procs if p.poll() is not None]

    def stop(self) -> list[int]:
        # A SIGTERM before FastStream installed its handlers kills at once: not the test here.
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline and not all(self._started(p) for _, p in self.procs):
            time.sleep(0.1)
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for _, proc in self.procs:
            try:
                codes.append(proc.wait(timeout=60))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes


def _sent_records(client: redis.Redis, stream: str) -> dict[str, list[float]]:
    """alert id -> times of its ``sent`` records (from the entry ids: the server's clock)."""
    records: dict[str, list[float]] = defaultdict(list)
    last = "-"
    while True:
        page: list[Any] = list(client.xrange(stream, min=last, max="+", count=5_000) or [])
        if last != "-":
            page = page[1:]
        if not page:
            return records
        for entry_id, fields in page:
            if fields.get(b"outcome") == b"sent":
                at = int(bytes(entry_id).split(b"-")[0]) / 1000
                records[bytes(fields[b"alert_id"]).decode()].append(at)
        last = bytes(page[-1][0]).decode()


def trace(
    receipts: Receipts, sent: dict[str, list[float]], kills: list[tuple[float, str]]
) -> tuple[int, int, list[dict[str, Any]]]:
    """(duplicates, traced, untraced details): which repeats a kill between send and record explains.

    A repeat of receipt i is explained when a kill (of a notify worker, or of the server) fell
    between receipt i and receipt i+1, and send i was either never recorded (fewer records than
    receipts) or recorded only after that kill (the record was held up by it, and meanwhile
    another consumer reclaimed the entry and sent it again). A request on the wire when its
    sender died is read by the receiver a moment after the kill: ``IN_FLIGHT_SLACK`` allows that.
    """
    duplicates = traced = 0
    untraced = []
    kill_times = sorted(t for t, what in kills if what in ("notify", "server"))
    for alert_id, times in receipts.times.items():
        if len(times) < 2:
            continue
        duplicates += len(times) - 1
        records = sorted(sent.get(alert_id, []))
        explained = 0
        for i in range(len(times) - 1):
            for k in kill_times:
                if not times[i] - IN_FLIGHT_SLACK <= k <= times[i + 1]:
                    continue
                if len(records) < len(times) or (i < len(records) and records[i] >= k):
                    explained += 1
                    break
        traced += explained
        if explained < len(times) - 1:
            base = times[0]
            untraced.append({
                "alert_id": alert_id,
                "received_at": [round(t - base, 3) for t in times],
                "recorded_at": [round(t - base, 3) for t in records],
                "kills_near": [(round(k - base, 3), w) for k, w in kills if base - 5 <= k <= times[-1] + 5],
            })  # fmt: skip
    return duplicates, traced, untraced


def run(cfg: Config) -> dict[str, Any]:
    rng = random.Random(cfg.seed)
    started = time.monotonic()
    work = cfg.workdir or Path(tempfile.mkdtemp(prefix="tradewatch-chaos-"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    inbox = work / "inbox"
    inbox.mkdir(exist_ok=True)
    receipts = Receipts()
    http = _receiver(receipts)
    server = LocalServer(work / "server", appendonly=True, extra_args=["--appendfsync", "always"])
    server.start()
    (work / "channels.yaml").write_text(
        f"version: 1\nurls:\n  - json://127.0.0.1:{http.server_address[1]}/hook:\n      - tag: hook\n"
    )
    (work / "subscriptions.yaml").write_text(
        "version: 1\nsubscriptions:\n  - name: team\n    channels: [hook]\n    min_severity: info\n"
    )
    reports = make_reports(cfg.reports, cfg.seed)
    expected, maybe = expected_alert_ids(reports, work)
    to_record, may_record = expected_alert_ids(reports, work, subscribed=False)
    records = Records(work / "data" / "tradewatch.db")
    recording = cfg.replicas.get("records", 0) > 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWATCH_")}
    env |= {
        "TRADEWATCH_REDIS_URL": server.url,
        "TRADEWATCH_NAMESPACE": "chaos",
        "TRADEWATCH_PARTITIONS": str(cfg.partitions),
        "TRADEWATCH_DATA_DIR": str(work / "data"),
        "TRADEWATCH_INBOX_DIR": str(inbox),
        "TRADEWATCH_INBOX_INTERVAL": "0.5s",
        "TRADEWATCH_POLL_INTERVAL": "0.5s",
        "TRADEWATCH_RECLAIM_IDLE": cfg.reclaim_idle,
        "TRADEWATCH_BATCH_SIZE": str(cfg.batch_size),
        "TRADEWATCH_MAX_DELIVERIES": "50",
        "TRADEWATCH_CATALOG_FILE": str(ROOT / "config/catalog.yaml"),
        "TRADEWATCH_RULES_FILES": str(ROOT / "config/rules.yaml"),
        "TRADEWATCH_RATES_FILE": str(ROOT / "config/rates.yaml"),
        "TRADEWATCH_CHANNELS_FILE": str(work / "channels.yaml"),
        "TRADEWATCH_SUBSCRIPTIONS_FILE": str(work / "subscriptions.yaml"),
        "TRADEWATCH_LOG_FORMAT": "json",
        "TRADEWATCH_LOG_LEVEL": "warning",
        "TRADEWATCH_HTTP_PORT": "0",  # any free port: 8087 may be held by a pipeline beside the run
    }
    fleet = Fleet(env, work / "logs", cfg.replicas)
    kills: list[tuple[float, str]] = []
    per_file = max(1, -(-len(reports) // cfg.files))
    chunks = [reports[i : i + per_file] for i in range(0, len(reports), per_file)]
    next_feed = next_kill = time.monotonic() + 1.0
    kill_points = sorted(cfg.kill_at)
    stages = sorted(cfg.replicas)
    restarted = False
    complete_at: float | None = None
    deadline = started + cfg.timeout
    try:
        while time.monotonic() < deadline:
            now = time.monotonic()
            if chunks and now >= next_feed:
                n = cfg.files - len(chunks)
                path = inbox / f"reports-{n:04d}.jsonl"
                tmp = inbox / f".reports-{n:04d}.tmp"  # written aside, then renamed in whole
                tmp.write_text("".join(json.dumps(r) + "\n" for r in chunks.pop(0)))
                tmp.rename(path)
                next_feed = now + cfg.feed_interval
            progress = receipts.distinct(expected) / max(1, len(expected))
            if not restarted and progress >= cfg.server_restart_at:
                server.kill()
                kills.append((time.time(), "server"))
                time.sleep(1.0)  # an outage, not a blip
                server.start()
                restarted = True
            if cfg.kill_at:
                if kill_points and progress >= kill_points[0]:
                    kill_points.pop(0)
                    stage = stages[sum(1 for _, w in kills if w != "server") % len(stages)]
                    kills.append((time.time(), fleet.kill_one(rng, stage)))
            elif now >= next_kill and complete_at is None:
                kills.append((time.time(), fleet.kill_one(rng)))
                next_kill = now + cfg.kill_every * rng.uniform(0.7, 1.3)
            recorded = not recording or to_record <= records.stored()
            if progress >= 1.0 and recorded and not chunks:
                complete_at = complete_at or now
                if now - complete_at >= cfg.quiet_for:
                    break
            if crashed := fleet.exited():
                raise RuntimeError(f"a worker exited by itself: {crashed} (logs in {work / 'logs'})")
            time.sleep(0.1)
    finally:
        codes = fleet.stop()
        sent = (
            _sent_records(redis.Redis.from_url(server.url), StreamNames("chaos", cfg.partitions).deliveries)
            if server.process
            else {}
        )
        server.stop()
        http.shutdown()
    duplicates, traced, untraced = trace(receipts, sent, kills)
    worker_kills = [k for k in kills if k[1] != "server"]
    stored = records.check(to_record, may_record) if recording else None
    return {
        "reports": cfg.reports,
        "expected": len(expected),
        "delivered": receipts.distinct(expected),
        "lost": len(expected - receipts.times.keys()),
        "duplicated": duplicates,
        "duplicates_traced": traced,
        "duplicates_untraced": duplicates - traced,
        "untraced": untraced[:10],
        "unexpected": len(receipts.times.keys() - expected - maybe),
        "over_time": len(receipts.times.keys() & maybe),
        "kills": len(worker_kills),
        "kills_by_stage": {s: sum(1 for _, w in worker_kills if w == s) for s in stages},
        "server_restarts": len(kills) - len(worker_kills),
        "clean_exit_codes": codes,
        "records": stored,
        "seconds": round(time.monotonic() - started, 1),
        "workdir": str(work),
    }


def failed(result: dict[str, Any]) -> bool:
    """Anything lost, a duplicate no kill explains, or a store of record that lost, doubled or
    broke its chain."""
    records = result.get("records") or {}
    broken = bool(records) and (
        records["lost"]
        or records["doubled"]
        or not str(records["audit"]).startswith("the audit chain is intact")
    )
    return bool(result["lost"] or result["duplicates_untraced"] or broken)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between SIGKILLs (jittered)")
    parser.add_argument("--rules", type=int, default=2, help="rules worker replicas")
    parser.add_argument("--notify", type=int, default=2, help="notify worker replicas")
    parser.add_argument("--records", type=int, default=2, help="records worker replicas")
    parser.add_argument("--timeout", type=float, default=1_080.0, help="give up after this many seconds")
    parser.add_argument("--partitions", type=int, default=1, help="stream partitions (TRADEWATCH_PARTITIONS)")
    parser.add_argument("--out", type=Path, help="also write the result JSON to this file")
    args = parser.parse_args()
    cfg = Config(
        reports=args.reports,
        kill_every=args.kill_every,
        replicas={"ingest": 1, "rules": args.rules, "notify": args.notify, "records": args.records},
        timeout=args.timeout,
        partitions=args.partitions,
    )
    load = os.getloadavg()
    print(f"chaos: {cfg.reports} reports, a SIGKILL every ~{cfg.kill_every}s, load before {load}", flush=True)
    result = run(cfg) | {"loadavg_before": [round(x, 2) for x in load]}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), flush=True)
    if failed(result):
        sys.exit(1)


if __name__ == "__main__":
    main()
