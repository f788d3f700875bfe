"""The rules stage's alerts on the sample and benchmark reports are those of the golden file
(tests/golden.py says what is run; ``python -m tests.golden_update`` writes the file again)."""

from __future__ import annotations

import json
import os

import pytest

from tests import golden


def test_alerts_are_those_of_the_golden_file() -> None:
    made = golden.produce()
    if os.environ.get("TRADEWATCH_GOLDEN_UPDATE") == "1":
        golden.GOLDEN.write_bytes(golden.dump(made))
        pytest.skip(f"rewrote {golden.GOLDEN.name}: review its diff")
    expected = golden.load()
    assert [m["report_id"] for m in made] == [e["report_id"] for e in expected]
    for now, before in zip(made, expected, strict=True):
        # Compared one report at a time, so a failure shows the first report that differs.
        now = json.loads(json.dumps(now))  # as read back from the file: tuples become lists
        assert now == before, f"report {before['report_id']} differs from {golden.GOLDEN.name}"
