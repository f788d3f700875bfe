"""5. Memory: the resident size of each worker idle (started, groups created, nothing to do).

Under load, the peaks come from the other runs: the rules worker draining the preloaded stream
(bench_rules), the rules and notify workers at a steady rate (bench_latency), and the ingest
command on the largest file (bench_ingest).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import common


def run(settle: float = 5.0) -> dict[str, Any]:
    with common.fresh_server() as url, tempfile.TemporaryDirectory(prefix="twbench-mem-") as tmp_:
        tmp = Path(tmp_)
        env = common.worker_env(url, f"twbench-{uuid.uuid4().hex[:8]}", tmp / "data")
        procs = {
            s: common.spawn(common.tradewatch("worker", s), env, tmp / f"{s}.log")
            for s in ("ingest", "rules", "notify")
        }
        try:
            time.sleep(settle)
            idle = {s: common.rss_kib(p.pid) for s, p in procs.items()}
            alive = {s: p.poll() is None for s, p in procs.items()}
        finally:
            for p in procs.values():
                p.terminate()
            for p in procs.values():
                p.wait(timeout=60)
    if not all(alive.values()):
        raise RuntimeError(f"a worker exited early: {alive}")
    return {"idle_rss_kib": idle}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
