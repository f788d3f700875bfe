"""The chaos scenario of ``make chaos``, small: 300 reports, four SIGKILLs, one server restart.

Same harness as the full run (benchmarks/chaos.py): real worker processes, a server of its own
with append-only persistence, a real HTTP channel, the store of record in an SQLite file. Kills
fall at set points of progress (a fifth, two fifths, three fifths and four fifths of the alerts
received), one per stage, and the server is killed and restarted in between, so every kind of
crash happens while work is in flight.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.chaos import Config, run

pytestmark = pytest.mark.slow  # two chaos runs of about two minutes each


@pytest.mark.timeout(600)
@pytest.mark.parametrize("partitions", [1, 4])
def test_nothing_lost_and_every_duplicate_traced_to_a_kill(tmp_path: Path, partitions: int) -> None:
    result = run(
        Config(
            reports=300,
            files=10,
            feed_interval=0.3,
            kill_at=[0.2, 0.4, 0.6, 0.8],
            server_restart_at=0.55,
            replicas={"ingest": 1, "rules": 1, "notify": 1, "records": 1},
            reclaim_idle="1s",
            quiet_for=3.0,
            timeout=540,  # about 130 s here; 220 s beside another chaos run: a deadline, not a target
            partitions=partitions,
            workdir=tmp_path,
        )
    )
    assert result["expected"] > 300  # some reports trip several rules
    assert result["lost"] == 0, result
    assert result["delivered"] == result["expected"]
    assert result["unexpected"] == 0
    assert result["duplicates_untraced"] == 0, result
    assert result["kills"] == 4
    assert result["kills_by_stage"] == {"ingest": 1, "notify": 1, "records": 1, "rules": 1}
    assert result["server_restarts"] == 1
    assert result["clean_exit_codes"] == [0, 0, 0, 0]  # and SIGTERM still stops each cleanly
    # The store of record: every alert recorded once, none doubled, its audit chain intact.
    records = result["records"]
    assert records["lost"] == 0, records
    assert records["doubled"] == 0, records
    assert records["stored"] == records["expected"] > 300
    assert records["unexpected"] == 0
    assert records["audit"].startswith("the audit chain is intact"), records
