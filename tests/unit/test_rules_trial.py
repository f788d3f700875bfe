"""``tradewatch rules test``: the samples against their golden file, differences said plainly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from tests.helpers import CATALOG_FILE, RATES_FILE, ROOT, RULES_FILE

SAMPLES = ROOT / "config/samples/reports.jsonl"
GOLDEN = ROOT / "config/samples/expected/alerts.jsonl"


@pytest.fixture(autouse=True)
def _configured(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWATCH_CATALOG_FILE", str(CATALOG_FILE))
    monkeypatch.setenv("TRADEWATCH_RULES_FILES", str(RULES_FILE))
    monkeypatch.setenv("TRADEWATCH_RATES_FILE", str(RATES_FILE))
    monkeypatch.setenv("TRADEWATCH_LOG_LEVEL", "warning")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["rules", "test", *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_samples_match_their_golden_file() -> None:
    code, _, err = invoke(str(SAMPLES), "--expect", str(GOLDEN))
    assert code == 0, err
    assert "as expected: 8 report(s)" in err


def test_json_lines_have_the_documented_shape() -> None:
    code, out, _ = invoke(str(SAMPLES), "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["report_id"] for line in lines][:2] == [
        "sample-2026-03-dandong-farm",
        "sample-2026-03-rason-shipyard",
    ]
    shipyard = next(a for a in lines[1]["alerts"] if a["rule_id"] == "shipyard-equipment")
    assert set(shipyard) == {"rule_id", "severity", "tags", "matched_items"}
    assert shipyard["severity"] == "critical"
    assert set(shipyard["matched_items"][0]) == {"index", "hs_code", "categories"}
    assert lines[-1] == {"report_id": "sample-2026-03-food-aid", "alerts": []}


def test_a_difference_is_said_plainly_and_fails(tmp_path: Path) -> None:
    golden = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]
    medical = next(g for g in golden if g["report_id"] == "sample-2026-03-hyesan-medical-radio")
    for alert in medical["alerts"]:
        if alert["rule_id"] == "medical-imaging-review":
            alert["severity"] = "low"
    medical["alerts"].append({"rule_id": "ghost", "severity": "info", "tags": [], "matched_items": []})
    golden = [g for g in golden if g["report_id"] != "sample-2026-03-food-aid"]
    changed = tmp_path / "golden.jsonl"
    changed.write_text("".join(json.dumps(g) + "\n" for g in golden), encoding="utf-8")

    code, _, err = invoke(str(SAMPLES), "--expect", str(changed))

    assert code == 1
    assert "sample-2026-03-hyesan-medical-radio: rule medical-imaging-review is medium, expected low" in err
    assert "sample-2026-03-hyesan-medical-radio: rule ghost was expected to fire and does not" in err
    assert "sample-2026-03-food-aid: not in the expected file (fires: nothing)" in err


def test_the_text_output_says_why_and_what_was_suppressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exceptions = tmp_path / "exceptions.yaml"
    exceptions.write_text(
        "version: 1\nexceptions:\n  radio-telecom:\n"
        "    - {id: hyesan-licence, reason: licensed relay link, crossing: [Changbai-Hyesan]}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("TRADEWATCH_EXCEPTIONS_FILES", str(exceptions))
    code, out, _ = invoke(str(SAMPLES))
    assert code == 0
    medical = out.split("sample-2026-03-hyesan-medical-radio")[1].split("\n\n")[0]
    assert "FIRES medical-imaging-review [medium]" in medical
    assert "legal basis: UNSCR 2397 (2017) paragraph 25" in medical
    assert '"ultrasound diagnostic equipment" (en) in description -> ultrasound, HS 901812' in medical
    assert "SUPPRESSED radio-telecom by exception hyesan-licence: licensed relay link" in medical
    assert "FIRES radio-telecom" not in medical
    surge = out.split("sample-2026-03-dandong-construction")[1].split("\n\n")[0]
    assert "WAITS machinery-surge-by-crossing: 2 so far" in surge


def test_a_bad_report_line_is_named(tmp_path: Path) -> None:
    reports = tmp_path / "r.jsonl"
    reports.write_text(
        '{"report_id": "ok", "source": "s", "text": "x"}\n{"report_id": "x"}\n', encoding="utf-8"
    )
    code, _, err = invoke(str(reports))
    assert code == 2
    assert f"{reports}:2: not a valid report: source: Field required" in err
