"""Stages as separate processes: ``faststream run``, replicas side by side, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from services.settings import Settings
from tests.fixtures.news_facts import NEWS_REPORT
from tests.helpers import ROOT


def env_for(settings: Settings, tmp_path: Path) -> dict[str, str]:
    url = settings.redis_url.get_secret_value() if settings.redis_url else ""
    return {
        **os.environ,
        "TRADEWATCH_REDIS_URL": url,
        "TRADEWATCH_NAMESPACE": settings.namespace,
        "TRADEWATCH_DATA_DIR": str(tmp_path / "data"),
        "TRADEWATCH_POLL_INTERVAL": "0.2",
        "TRADEWATCH_LOG_FORMAT": "json",
        "TRADEWATCH_HTTP_PORT": "0",
    }


def wait_for(predicate: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_faststream_run_serves_the_rules_stage_and_stops_cleanly_on_sigterm(
    settings: Settings, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    names = settings.streams
    faststream = Path(sys.executable).with_name("faststream")
    proc = subprocess.Popen(
        [str(faststream), "run", "services.rules.app:app"],
        env=env_for(settings, tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})
        assert wait_for(lambda: raw_redis.exists(names.alerts)), "no alert from the faststream-run app"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert raw_redis.xpending(names.reports, "rules")["pending"] == 0
    events = [json.loads(line).get("event") for line in err.splitlines() if line.startswith("{")]
    assert "report evaluated" in events
    assert "stopped" in events


def test_replicas_share_the_work_through_the_group(
    settings: Settings, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    names = settings.streams
    for n in range(200):
        raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT | {"report_id": f"r-{n}"})})
    env = env_for(settings, tmp_path) | {"TRADEWATCH_BATCH_SIZE": "10"}
    tradewatch = [sys.executable, "-m", "services.cli", "worker", "rules", "--burst"]
    # Logs go to files, not pipes: a pipe nobody reads fills up and stalls the writer.
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    procs = []
    for log in logs:
        with log.open("w") as handle:
            procs.append(
                subprocess.Popen(tradewatch, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=handle)
            )
    codes = [p.wait(timeout=120) for p in procs]
    results = [("", log.read_text()) for log in logs]
    assert codes == [0, 0], [r[1][-2000:] for r in results]

    per_process = []
    for _, err in results:
        handled = {
            json.loads(line).get("report_id") for line in err.splitlines() if '"report evaluated"' in line
        }
        per_process.append(handled - {None})
    assert per_process[0] | per_process[1] == {f"r-{n}" for n in range(200)}
    assert not per_process[0] & per_process[1]  # no report handled twice
    # Each process reads under a name of its own (host and pid); which of them got work depends on
    # how fast each started, so the check is on the names, not on both having read.
    started = [
        json.loads(line)["consumer"]
        for _, err in results
        for line in err.splitlines()
        if '"event": "started"' in line
    ]
    assert len(started) == 2
    assert started[0] != started[1]
    consumers = {c["name"].decode() for c in raw_redis.xinfo_consumers(names.reports, "rules")}
    assert consumers <= set(started)
