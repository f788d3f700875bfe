"""4. Scale-out: one against two ``tradewatch worker rules`` processes on the same stream and group.

Same preloaded reports, shipped pack, timed from outside as in bench_rules; one and two
processes alternate ``repeats`` times, and the median of each is kept.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.bench_rules import run_one


def run(reports: int = 20_000, repeats: int = 3, batch: int = 256) -> dict[str, Any]:
    runs: dict[int, list[float]] = {1: [], 2: []}
    with common.fresh_server() as url, tempfile.TemporaryDirectory(prefix="twbench-scale-") as tmp:
        for _ in range(repeats):
            for n in (1, 2):
                runs[n].append(run_one(url, "shipped", reports, batch, Path(tmp), processes=n)["rate"])
    one, two = common.median(runs[1]), common.median(runs[2])
    return {
        "reports": reports,
        "cores": os.cpu_count(),
        "rates": {"1 process": one, "2 processes": two},
        "runs": {"1 process": runs[1], "2 processes": runs[2]},
        "ratios": {"2 / 1": round(two / one, 3)},
        "goals": {"2 / 1": 1.6},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000, repeats=1), indent=2))
