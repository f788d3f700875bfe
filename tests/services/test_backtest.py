"""Backtests against a real database (SQLite and PostgreSQL): archived reports replayed through the
shipped rules and a proposed change, in worker processes and in one, with the same answer; the
command line prints the difference and its throughput."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.report import ImportReport
from services.cli import app
from services.history.backtest import Backtest, RuleFiles, backtest, render
from services.sanctions.index import ScreeningIndex
from services.sanctions.lists import read_list
from services.store import Store
from services.yamlfile import ConfigError
from tests.helpers import CATALOG_FILE, RATES_FILE, RULES_FILE, SAMPLE_XML, make_report
from tests.history import command_env, fill, seed

LIVE = RuleFiles((RULES_FILE,), CATALOG_FILE, RATES_FILE)


def proposed(tmp_path: Path) -> RuleFiles:
    """The shipped rules with vehicles lowered to medium, surges at two reports, no new-heading rule."""
    text = RULES_FILE.read_text(encoding="utf-8")
    text = text.replace(
        "title: Transportation vehicles to the DPRK (HS 86-89)\n    severity: high",
        "title: Transportation vehicles to the DPRK (HS 86-89)\n    severity: medium",
    )
    text = text.replace(
        "frequency: {count: 3, window: 7d, per: [crossing]}",
        "frequency: {count: 2, window: 7d, per: [crossing]}",
    )
    text = text.replace(
        "    new_term: {field: hs_heading}", "    enabled: false\n    new_term: {field: hs_heading}"
    )
    path = tmp_path / "proposed.yaml"
    path.write_text(text, encoding="utf-8")
    return RuleFiles((path,), CATALOG_FILE, RATES_FILE)


def shipment(
    report_id: str, day: str, hs: str, description: str, crossing: str = "Dandong-Sinuiju"
) -> ImportReport:
    return make_report(
        report_id,
        crossing=crossing,
        reported_at=f"{day}T00:00:00Z",
        items=[{"description": description, "hs_code": hs}],
    )


KNOWN = [
    shipment("d1", "2026-03-01", "8458", "lathe"),
    shipment("d2", "2026-03-03", "8704", "truck"),
    shipment("d3", "2026-03-20", "8458", "lathe"),
]


def filler(n: int) -> list[ImportReport]:
    """April reports of tractors (and rice) with no crossing: never a surge, a vehicles alert each."""
    start = datetime(2026, 4, 1, tzinfo=UTC)
    return [
        make_report(f"f{i:04d}", reported_at=(start + timedelta(hours=i)).isoformat(),
                    items=[{"description": "tractor", "hs_code": "8701"}, {"description": "rice", "hs_code": "1006"}])
        for i in range(n)
    ]  # fmt: skip


def comparable(result: Backtest) -> dict[str, object]:
    out = result.as_dict()
    for key in ("seconds", "workers", "reports_per_second"):
        out.pop(key)
    return out


async def test_a_backtest_shows_what_a_rule_change_would_have_changed(store: Store, tmp_path: Path) -> None:
    await fill(store, [*KNOWN, *filler(240)])
    change = proposed(tmp_path)
    one = await backtest(store, LIVE, change, workers=1)
    two = await backtest(store, LIVE, change, workers=2, chunk=40)
    assert comparable(one) == comparable(two)
    spawned = await backtest(store, LIVE, change, workers=2, chunk=120, start_method="spawn")
    assert comparable(spawned) == comparable(one)
    assert two.reports == 243
    assert two.workers == 2

    per_rule = {r.rule_id: (r.live, r.proposed) for r in two.per_rule}
    assert per_rule["new-machinery-heading"][0] > 0
    assert per_rule["new-machinery-heading"][1] == 0
    assert per_rule["machinery-surge-by-crossing"] == (0, 1)
    assert per_rule["unscr2397-vehicles"][0] == per_rule["unscr2397-vehicles"][1] == 241
    changes = {(c.report_id, c.rule_id): c for c in two.examples}
    surge = changes[("d2", "machinery-surge-by-crossing")]
    assert (surge.kind, surge.live_severity, surge.proposed_severity) == ("appears", None, "high")
    lowered = changes[("d2", "unscr2397-vehicles")]
    assert (lowered.kind, lowered.live_severity, lowered.proposed_severity) == ("severity", "high", "medium")
    assert two.alerts_severity_changed == 241
    assert two.alerts_appear == 1
    assert two.alerts_disappear == per_rule["new-machinery-heading"][0]
    # The filler's cases go from high to medium; d2 stays high (its surge), as do d1 and d3.
    assert two.cases_severity_changed == 240
    assert two.cases_appear == two.cases_disappear == 0
    text = render(two)
    assert "machinery-surge-by-crossing: 0 -> 1  (+1)" in text
    assert "d2 (2026-03-03) machinery-surge-by-crossing: appears (high)" in text
    assert "reports/s" in text

    # The same change pasted as text (the console's form), with a broken one refused by the loader.
    with RuleFiles.from_text(change.rules[0].read_text(encoding="utf-8"), LIVE) as pasted:
        assert comparable(await backtest(store, LIVE, pasted, workers=1)) == comparable(one)
    with (
        RuleFiles.from_text("rules:\n  - id: x\n    nonsense: 1\n", LIVE) as broken,
        pytest.raises(ConfigError),
    ):
        await backtest(store, LIVE, broken, workers=1)

    # A window of event time, and the live rules against themselves: no difference.
    march = await backtest(
        store, LIVE, LIVE, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), 1
    )
    assert march.reports == 3
    assert not march.changed
    assert "no difference" in render(march)


def test_rules_backtest_prints_json_for_a_program(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(database_url, KNOWN)
    command_env(monkeypatch, tmp_path, database_url)
    change = proposed(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "rules",
            "backtest",
            "--rules",
            str(change.rules[0]),
            "--since",
            "2026-03-01",
            "--workers",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["reports"] == 3
    assert doc["alerts_appear"] == 1
    appears = [(e["report_id"], e["rule_id"]) for e in doc["examples"] if e["kind"] == "appears"]
    assert appears == [("d2", "machinery-surge-by-crossing")]

    text = CliRunner().invoke(
        app, ["rules", "backtest", "--rules", str(change.rules[0]), "--workers", "1", "--no-screen"]
    )
    assert text.exit_code == 0, text.stderr
    assert "backtest of 3 archived report(s)" in text.stdout
    assert "party conditions not screened" in text.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n    nonsense: 1\n", encoding="utf-8")
    refused = CliRunner().invoke(app, ["rules", "backtest", "--rules", str(bad), "--no-screen"])
    assert refused.exit_code == 2
    assert "problem(s) in the rule files" in refused.stderr


@pytest.mark.slow
async def test_the_backtest_benchmark_runs_on_one_and_two_processes() -> None:
    from benchmarks.backtest import main

    result = await main(300, [1, 2], None)
    assert [r["workers"] for r in result["runs"]] == [1, 2]
    assert all(r["reports"] == 300 and r["reports_per_second"] > 0 for r in result["runs"])
    assert result["runs"][0]["alerts_proposed"] == result["runs"][1]["alerts_proposed"]


async def test_party_conditions_are_screened_against_the_lists_given(store: Store, tmp_path: Path) -> None:
    listed = make_report(
        "p1", importer="Korea Ryonha Machinery Joint Venture Corporation", reported_at="2026-03-02T00:00:00Z",
        items=[{"description": "lathe", "hs_code": "8458"}],
    )  # fmt: skip
    await fill(store, [listed, *KNOWN])
    text = RULES_FILE.read_text(encoding="utf-8").replace(
        "    when:\n      party: {lists: [un-dprk], min_score: 0.9",
        "    enabled: false\n    when:\n      party: {lists: [un-dprk], min_score: 0.9",
    )
    index = ScreeningIndex.build(read_list(SAMPLE_XML, "un-sc").entries, "un-sc:sample")
    with RuleFiles.from_text(text, LIVE) as without_party_rule:
        screened = await backtest(store, LIVE, without_party_rule, workers=2, chunk=2, screening=index)
        blind = await backtest(store, LIVE, without_party_rule, workers=1)
    assert screened.screened_against == "un-sc:sample"
    gone = [(c.report_id, c.rule_id, c.kind) for c in screened.examples if c.rule_id == "un-listed-party"]
    assert gone == [("p1", "un-listed-party", "disappears")]
    assert blind.screened_against is None
    assert not [c for c in blind.examples if c.rule_id == "un-listed-party"]
    assert "party conditions screened against un-sc:sample" in render(screened)
