"""Alerts read as cases: one per report, items once, findings with several reasons."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.alert import Alert, MatchedItem, Severity
from services.cases import cases_of


def alert(
    rule: str, severity: Severity, items: list[MatchedItem], report: str = "r-1", **extra: Any
) -> Alert:
    return Alert(
        alert_id=f"a-{report}-{rule}", rule_id=rule, rule_version="v1", severity=severity, report_id=report,
        title=f"rule {rule}", summary="s", matched_items=items, legal_basis=f"basis of {rule}",
        created_at=datetime(2026, 3, 6, tzinfo=UTC), destination_country="KP", crossing="Dandong-Sinuiju",
        dedup_key="k", group_key="g", evidence=["destination country KP", *extra.pop("evidence", [])], **extra,
    )  # fmt: skip


def lathe(*evidence: str) -> MatchedItem:
    return MatchedItem(
        index=0, description="used lathes", hs_code="845811", categories=["machine-tools"],
        evidence=[*evidence, '"lathe" in description -> lathe'], classification=['"lathe" in description -> lathe'],
        quantity=3, unit="unit", unit_price=60000, currency="CNY", value=180000, value_base=24840,
        base_currency="USD",
    )  # fmt: skip


def tractor(*evidence: str) -> MatchedItem:
    return MatchedItem(index=1, description="tractors", hs_code="8701", evidence=list(evidence))


def test_rules_on_the_same_item_are_one_finding_with_several_reasons() -> None:
    alerts = [
        alert("ban", Severity.HIGH, [lathe("HS 8458.11 falls in chapters 84 to 85")]),
        alert("dual-use", Severity.CRITICAL, [lathe("category dual-use")]),
        alert("value", Severity.MEDIUM, [lathe("value is at least 20,000 USD")]),
        alert("vehicles", Severity.HIGH, [tractor("HS 8701 falls in chapters 86 to 89")]),
        alert("technicians", Severity.HIGH, [], evidence=['"technicians" in the report text']),
    ]
    (case,) = cases_of(alerts)
    assert case.severity == "critical"
    assert case.headline == "used lathes, tractors to North Korea via Dandong-Sinuiju"
    assert case.common == ["destination country KP"]  # said once, not in every reason
    first, *rest = case.findings
    assert first.what == "used lathes (HS 8458.11)"
    assert first.severity == "critical"
    assert [r.rule_id for r in first.reasons] == ["dual-use", "ban", "value"]  # worst first
    assert first.reasons[1].why == ["HS 8458.11 falls in chapters 84 to 85"]  # classification kept apart
    assert [f.what for f in rest] == ["tractors (HS 8701)", "the report as a whole"]
    assert rest[1].reasons[0].why == ['"technicians" in the report text']
    (lathes, tractors) = case.items
    assert lathes.classified == ['"lathe" in description -> lathe']
    assert lathes.amounts == "3 units at 60,000 CNY a unit = 180,000 CNY (24,840 USD)"
    assert tractors.amounts == ""
    assert sorted(case.alert_ids) == sorted(a.alert_id for a in alerts)


def test_cases_are_one_per_report_worst_first() -> None:
    alerts = [
        alert("ban", Severity.HIGH, [lathe()], report="r-1"),
        alert("vessel", Severity.CRITICAL, [tractor()], report="r-2"),
        alert("ban", Severity.HIGH, [tractor()], report="r-2"),
    ]
    cases = cases_of(alerts)
    assert [c.report_id for c in cases] == ["r-2", "r-1"]
    assert [len(c.findings) for c in cases] == [1, 1]
    plain = cases[0].as_dict()
    assert plain["route"] == "? -> North Korea (KP)"
    assert plain["items"][0]["label"] == "tractors (HS 8701)"


def test_quantities_read_as_people_write_them() -> None:
    one = MatchedItem(
        index=0, description="excavator", quantity=1, unit="unit", unit_price=1.5e6, currency="CNY"
    )
    steel = MatchedItem(index=1, description="steel plate", quantity=12.5, unit="t")
    (case,) = cases_of([alert("ban", Severity.HIGH, [one, steel])])
    assert [i.amounts for i in case.items] == ["1 unit at 1,500,000 CNY a unit", "12.5 t"]


def test_a_rule_raised_for_some_items_is_raised_for_those_only() -> None:
    used = lathe("HS 8458.11 (declared) falls in chapters 84 to 85").model_copy(
        update={"severity": Severity.CRITICAL, "severity_reason": "severity raised to critical: second-hand"}
    )
    new = MatchedItem(
        index=1, description="presses (new)", hs_code="8462", severity=Severity.HIGH,
        evidence=["HS 8462 (declared) falls in chapters 84 to 85"],
    )  # fmt: skip
    grinder = MatchedItem(
        index=2, description="grinders", hs_code="8460", severity=Severity.HIGH,
        evidence=["HS 8460 (declared) falls in chapters 84 to 85"],
    )  # fmt: skip
    ban = alert(
        "ban", Severity.CRITICAL, [used, new, grinder], evidence=["severity raised to critical: second-hand"]
    )
    (case,) = cases_of([ban])
    critical, high = case.findings
    assert (critical.severity, critical.what) == ("critical", "used lathes (HS 8458.11)")
    assert critical.reasons[0].why[-1] == "severity raised to critical: second-hand"
    assert (high.severity, high.what) == ("high", "presses (HS 8462) and grinders (HS 8460)")
    # Not claimed for the new presses; their two codes said in one line.
    assert high.reasons[0].why == ["HS 8462 and 8460 (declared) fall in chapters 84 to 85"]
    assert case.headline == "used lathes, presses, grinders to North Korea via Dandong-Sinuiju"
