"""Flows over time from the archive, against a real database (SQLite and PostgreSQL): monthly value
and count per HS chapter and crossing, the surge month marked, and ``tradewatch flows --json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.report import ImportReport
from services.cli import app
from services.history.flows import flows, monthly, render
from services.money import load_rates
from services.store import Store
from tests.helpers import RATES_FILE, make_report
from tests.history import command_env, fill, seed


def lathes(report_id: str, day: str, quantity: int = 1, crossing: str = "Dandong-Sinuiju") -> ImportReport:
    return make_report(
        report_id, crossing=crossing, reported_at=f"{day}T00:00:00Z",
        items=[{"description": "lathe", "hs_code": "8458", "quantity": quantity, "unit_price": 10_000, "currency": "USD"},
               {"description": "truck", "hs_code": "8704", "quantity": 1, "unit_price": 1_000, "currency": "USD"}],
    )  # fmt: skip


def history() -> list[ImportReport]:
    """One lathe report a month from October to January, then six in February: the surge."""
    quiet = [
        lathes(f"q{m}", day) for m, day in enumerate(["2025-10-05", "2025-11-05", "2025-12-05", "2026-01-05"])
    ]
    surge = [lathes(f"s{d}", f"2026-02-{d:02d}", quantity=2) for d in range(1, 7)]
    other = [lathes("h1", "2026-02-10", crossing="Hunchun-Rason"), make_report("t1", text="lathes seen")]
    return [*quiet, *surge, *other]


async def test_monthly_flows_mark_the_surge_month(store: Store) -> None:
    await fill(store, history())
    rates = load_rates(RATES_FILE)
    rows = await flows(store, rates)
    dandong84 = [r for r in rows if r.chapter == "84" and r.crossing == "Dandong-Sinuiju"]
    assert [(r.month, r.reports, r.surge) for r in dandong84] == [
        ("2025-10", 1, False), ("2025-11", 1, False), ("2025-12", 1, False), ("2026-01", 1, False), ("2026-02", 6, True),
    ]  # fmt: skip
    feb = dandong84[-1]
    assert feb.trailing_reports == 1.0
    assert feb.value == pytest.approx(6 * 2 * 10_000 * rates.convert(1, "USD", rates.base))  # type: ignore[operator]
    # Chapter 87 has the same months; Hunchun-Rason has one report, never a surge; the text-only report has no chapter.
    assert {r.chapter for r in rows} == {"84", "87"}
    assert [(r.month, r.surge) for r in rows if r.crossing == "Hunchun-Rason" and r.chapter == "84"] == [
        ("2026-02", False)
    ]
    assert {"month", "chapter", "crossing", "reports", "value", "surge"} <= feb.as_dict().keys()
    assert "SURGE" in render(rows, rates.base)

    # A window of event time: February alone has nothing before it to compare with.
    only_feb = await flows(store, rates, datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert not any(r.surge for r in only_feb)


def test_a_quiet_gap_counts_as_zero_and_small_months_are_never_surges() -> None:
    at = [datetime(2026, m, 1, tzinfo=UTC) for m in (1, 5, 5)]
    rows = monthly([(t, "X", {"84": 1.0}) for t in at], factor=2.0, min_reports=2)
    # Feb-Apr had no reports: May's trailing mean is 0, and two reports there are a surge.
    assert [(r.month, r.trailing_reports, r.surge) for r in rows] == [
        ("2026-01", None, False),
        ("2026-05", 0.0, True),
    ]
    assert not any(r.surge for r in monthly([(t, "X", {"84": 1.0}) for t in at], min_reports=3))


def test_tradewatch_flows_prints_rows_as_json(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(database_url, history())
    command_env(monkeypatch, tmp_path, database_url)
    result = CliRunner().invoke(app, ["flows", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["month"], r["chapter"]) for r in rows if r["surge"]] == [("2026-02", "84"), ("2026-02", "87")]
    text = CliRunner().invoke(app, ["flows", "--since", "2026-01-01"])
    assert text.exit_code == 0, text.stderr
    assert "2026-02" in text.stdout
    assert "2025-12" not in text.stdout
