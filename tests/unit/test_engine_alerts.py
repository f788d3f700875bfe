"""The engine builds alerts without validating them again (``model_construct``): each must be
exactly what validation would make of it, on the benchmark's reports in three languages."""

from __future__ import annotations

from datetime import UTC, datetime

from benchmarks.common import ROOT, ReportMaker
from schemas.alert import Alert
from schemas.report import ImportReport
from services.rules.engine import explain
from services.rules.loader import load_ruleset


def test_alerts_built_without_validation_are_valid_and_serialise_alike() -> None:
    ruleset = load_ruleset(
        [ROOT / "config/rules.yaml"], ROOT / "config/catalog.yaml", ROOT / "config/rates.yaml"
    )
    maker = ReportMaker(seed=7)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    checked = 0
    for n in range(400):
        report = ImportReport.model_validate(maker.report(n))
        for verdict in explain(report, ruleset, now):
            for alert in [verdict.alert, verdict.pending and verdict.pending.alert]:
                if not isinstance(alert, Alert):
                    continue
                text = alert.model_dump_json(exclude_none=True)
                again = Alert.model_validate_json(text)
                assert again.model_dump_json(exclude_none=True) == text
                assert again.model_dump() == alert.model_dump()
                assert type(again.realert) is type(alert.realert)
                assert all(type(m.index) is int for m in alert.matched_items)
                checked += 1
    assert checked > 500
