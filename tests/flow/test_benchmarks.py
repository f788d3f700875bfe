"""Every benchmark script runs end to end on tiny inputs (a smoke run: no figure is judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # every benchmark script, end to end


@pytest.mark.timeout(600)
def test_make_bench_runs_every_benchmark_on_tiny_inputs(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=580,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())
    assert {"rules", "latency", "latency_unsaturated", "ingest", "scaleout", "memory"} <= set(results)
    assert results["machine"]["nproc"] >= 1
    rules = results["rules"]
    assert all(rate > 0 for rate in rules["rates"].values())
    # The workers did the real work: every preloaded report was handled and alerts came out.
    assert all(run["alerts"] > 0 for run in rules["runs"]["shipped"])
    latency = results["latency"]
    assert latency["delivered"] > 0
    assert latency["latency_ms"]["p50"] > 0
    assert results["ingest"]["500"]["published"] == 500
    assert "| floor (same run)" in done.stdout
