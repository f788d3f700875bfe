"""Stages as separate processes: ``faststream run``, replicas side by side, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from services.settings import Settings
from tests.fixtures.news_facts import NEWS_REPORT
from tests.helpers import ROOT, wait_until
from tests.pipeline import worker_env

pytestmark = pytest.mark.slow  # worker processes


def test_faststream_run_serves_the_rules_stage_and_stops_cleanly_on_sigterm(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    names = settings.streams
    faststream = Path(sys.executable).with_name("faststream")
    proc = subprocess.Popen(
        [str(faststream), "run", "services.rules.app:app"],
        env=worker_env(settings), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})
        assert wait_until(lambda: raw_redis.exists(names.alerts)), "no alert from the faststream-run app"
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
    env = worker_env(settings, batch_size="10")
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
