"""Worker processes against trouble: SIGTERM mid-batch, a server killed and restarted, a lost
group, a failing channel whose URL holds a token. Real processes, real servers, real channels."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from services.rules.stage import RulesStage
from services.server import LocalServer, free_port
from services.settings import Settings
from tests.fixtures.news_facts import NEWS_REPORT
from tests.helpers import CATALOG_FILE, RATES_FILE, ROOT, RULES_FILE, wait_until
from tests.pipeline import run_burst, with_channels, worker_env

pytestmark = pytest.mark.slow  # worker processes killed, servers killed and restarted


class Worker:
    """``tradewatch worker STAGE`` as a process, its log in a file (a pipe could fill and stall it)."""

    def __init__(self, stage: str, env: dict[str, str], log: Path, *extra: str) -> None:
        self.log = log
        with log.open("w") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "worker", stage, *extra],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=handle,
            )  # fmt: skip

    def events(self) -> list[dict[str, Any]]:
        text = self.log.read_text(errors="replace")
        # The worker may be writing a line right now: only whole lines are read, the rest next time.
        lines = text[: text.rfind("\n") + 1].splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def logged(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events())

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def own_settings(url: str, namespace: str, tmp_path: Path) -> Settings:
    """Settings for a server of the test's own (not the shared one, not the settings fixture)."""
    return Settings(
        redis_url=url, namespace=namespace, data_dir=tmp_path / "data",
        catalog_file=CATALOG_FILE, rules_files=[RULES_FILE], rates_file=RATES_FILE,
    )  # fmt: skip


def report(n: int) -> str:
    return json.dumps(NEWS_REPORT | {"report_id": f"resilience-{n}"})


def alerted_reports(client: redis.Redis, stream: str) -> set[str]:
    return {json.loads(f[b"alert"])["report_id"] for _, f in client.xrange(stream)}


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalServer]:
    """A server of the test's own, to kill and restart (never the shared one)."""
    srv = LocalServer(tmp_path / "server", appendonly=True)
    srv.start()
    yield srv
    srv.stop()


def test_sigterm_finishes_and_acks_the_batch_in_hand_reads_nothing_more_and_exits_0(
    settings: Settings, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    names = settings.streams
    arrived, release = threading.Event(), threading.Event()
    received: list[dict[str, Any]] = []

    def slow_channel(request: Request) -> Response:
        arrived.set()
        release.wait(60)  # the send is in flight while the worker is told to stop
        received.append(json.loads(request.get_data()))
        return Response("ok")

    with HTTPServer(host="127.0.0.1", port=free_port(), threaded=True) as http:
        http.expect_request("/hook", method="POST").respond_with_handler(slow_channel)
        url = f"json://127.0.0.1:{http.port}/hook"
        s = with_channels(settings, tmp_path, [(url, "hook")])
        raw_redis.xadd(names.reports, {"report": report(1)})
        asyncio.run(run_burst(s, lambda ctx: [RulesStage(ctx)]))
        first_batch = raw_redis.xlen(names.alerts)
        # The news report is dated March 2026: its rule over time fires a backfill alert, never sent.
        backfill = sum(
            1 for _, f in raw_redis.xrange(names.alerts) if json.loads(f[b"alert"]).get("backfill")
        )
        worker = Worker("notify", worker_env(s), tmp_path / "notify.log")
        try:
            assert arrived.wait(60), worker.log.read_text()[-3000:]
            worker.proc.send_signal(signal.SIGTERM)
            assert wait_until(lambda: worker.logged("stopping")), worker.log.read_text()[-3000:]
            # Work that arrives after the signal is left for the next worker.
            later = [json.loads(f[b"alert"]) for _, f in raw_redis.xrange(names.alerts)]
            for alert in later:
                alert |= {"alert_id": alert["alert_id"] + "-later", "report_id": "resilience-later"}
                raw_redis.xadd(names.alerts, {"alert": json.dumps(alert)})
            release.set()
            code = worker.proc.wait(timeout=90)
        finally:
            release.set()
            worker.kill()

    assert code == 0, worker.log.read_text()[-3000:]
    assert len(received) == 1  # the message in flight was completed
    group = next(g for g in raw_redis.xinfo_groups(names.alerts) if g["name"] == b"notify")
    assert group["pending"] == 0  # ... and acked before the exit
    assert group["lag"] == first_batch  # nothing read after the signal
    sent = [f for _, f in raw_redis.xrange(names.key("deliveries")) if f[b"outcome"] == b"sent"]
    assert len(sent) == first_batch - backfill
    assert worker.logged("stopped")


def test_worker_rides_out_a_server_killed_and_restarted_and_catches_up(
    own_server: LocalServer, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(own_server.url)
    own = own_settings(own_server.url, "restart", tmp_path)
    names = own.streams
    worker = Worker(
        "rules", worker_env(own, reclaim_idle="1s", heartbeat_interval="0.5s"), tmp_path / "rules.log"
    )
    try:
        client.xadd(names.reports, {"report": report(1)})
        assert wait_until(lambda: "resilience-1" in alerted_reports(client, names.alerts)), (
            worker.log.read_text()[-3000:]
        )

        own_server.kill()  # SIGKILL: no goodbye to the clients
        time.sleep(1.0)  # an outage the worker notices: reads and heartbeats fail meanwhile
        own_server.start()  # same port, same append-only file
        client = redis.Redis.from_url(own_server.url)
        client.xadd(names.reports, {"report": report(2)})

        assert wait_until(lambda: "resilience-2" in alerted_reports(client, names.alerts), 90), (
            worker.log.read_text()[-3000:]
        )
        assert worker.proc.poll() is None  # still the same process: no exit, no crash loop
        assert [e.get("event") for e in worker.events()].count("started") == 1
        assert wait_until(lambda: client.xpending(names.reports, "rules")["pending"] == 0)
    finally:
        code = worker.stop()
        worker.kill()
    assert code == 0, worker.log.read_text()[-3000:]


def test_a_group_lost_in_a_restart_without_persistence_is_recreated_by_the_running_worker(
    tmp_path: Path,
) -> None:
    srv = LocalServer(tmp_path / "server", appendonly=False)
    srv.start()
    own = own_settings(srv.url, "nogroup", tmp_path)
    names = own.streams
    worker = Worker("rules", worker_env(own), tmp_path / "rules.log")
    try:
        client = redis.Redis.from_url(srv.url)
        client.xadd(names.reports, {"report": report(1)})
        assert wait_until(lambda: "resilience-1" in alerted_reports(client, names.alerts)), (
            worker.log.read_text()[-3000:]
        )

        srv.kill()
        srv.start()  # empty: no stream, no group
        client = redis.Redis.from_url(srv.url)
        assert not client.exists(names.reports)
        client.xadd(names.reports, {"report": report(2)})  # a producer recreates the stream only

        assert wait_until(lambda: "resilience-2" in alerted_reports(client, names.alerts), 90), (
            worker.log.read_text()[-3000:]
        )
        assert worker.proc.poll() is None
        assert [g["name"] for g in client.xinfo_groups(names.reports)] == [b"rules"]
    finally:
        code = worker.stop()
        worker.kill()
        srv.stop()
    assert code == 0, worker.log.read_text()[-3000:]


def test_a_worker_started_before_its_server_waits_for_it_then_serves(tmp_path: Path) -> None:
    # As in compose without start ordering: the worker comes up first, the server seconds later.
    srv = LocalServer(tmp_path / "server", appendonly=False, port=free_port())
    own = own_settings(srv.url, "late", tmp_path)
    names = own.streams
    worker = Worker("rules", worker_env(own), tmp_path / "rules.log")
    try:
        assert wait_until(lambda: worker.logged("server unreachable while starting, trying again"), 60), (
            worker.log.read_text()[-3000:]
        )
        srv.start()
        client = redis.Redis.from_url(srv.url)
        client.xadd(names.reports, {"report": report(1)})
        assert wait_until(lambda: "resilience-1" in alerted_reports(client, names.alerts), 90), (
            worker.log.read_text()[-3000:]
        )
        assert worker.proc.poll() is None
    finally:
        code = worker.stop()
        worker.kill()
        srv.stop()
    assert code == 0, worker.log.read_text()[-3000:]


def test_a_channel_token_never_appears_in_logs_or_errors(
    settings: Settings, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    token = "tw-SECRET-7f3a9c1e5b"
    dead_port = free_port()  # nothing listens: every send fails with a connection error
    url = f"json://hooker:${{HOOK_TOKEN}}@127.0.0.1:{dead_port}/hooks/${{HOOK_TOKEN}}?token=${{HOOK_TOKEN}}"
    s = with_channels(settings, tmp_path, [(url, "hook")])
    raw_redis.xadd(s.streams.reports, {"report": report(1)})
    asyncio.run(run_burst(s, lambda ctx: [RulesStage(ctx)]))
    env = worker_env(
        s, max_deliveries="2", reclaim_idle="0.2s", log_level="debug",
        notify_max_attempts="2", notify_retry_base="0.1s", notify_group_wait="0s",
    ) | {"HOOK_TOKEN": token}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "worker", "notify", "--burst"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    failures = [e for e in events if e.get("event") == "delivery failed"]
    assert failures  # the channel did fail, and said so ...
    # At debug, Apprise logs the URL it posts to: the place a token would leak, masked here.
    assert "json://" in done.stderr or "http://" in done.stderr
    assert "***" in done.stderr
    assert token not in done.stderr  # ... without its token
    assert token not in done.stdout
    dead = raw_redis.xrange(s.streams.alerts_dead)
    assert dead  # given up on after max_deliveries, with the reason
    assert all(b"refused" in f[b"dead.reason"] for _, f in dead)
    stored = [v for _, f in dead for v in f.values()] + [
        v for _, f in raw_redis.xrange(s.streams.key("deliveries")) for v in f.values()
    ]
    assert not [v for v in stored if token.encode() in v]
