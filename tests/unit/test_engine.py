"""The engine on inline rules: what fires, why, and what a rule author is told when a file is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.alert import Severity
from services.rules.engine import RuleSet, evaluate, explain
from services.yamlfile import ConfigError
from tests.helpers import NOW, rules_from
from tests.helpers import make_report as report

RULES = """
version: 1
rules:
  - id: machinery
    title: Machinery
    severity: high
    legal_basis: UNSCR 2397 OP7
    tags: [unscr-2397]
    when:
      all:
        - destination_country: [KP]
        - item: {hs: ["84-85"]}
    escalate:
      - when: {item: {hs: ["84-85"], condition: [used]}}
        to: critical
        reason: second-hand
    exceptions:
      - id: approved-importer
        reason: licensed by the 1718 Committee
        importer: [Approved Farm Co]
  - id: pricey
    title: High-value units
    severity: medium
    legal_basis: test
    when:
      item:
        unit_price: {gte: 5000, currency: CNY}
  - id: words
    title: Technicians
    severity: low
    legal_basis: test
    when:
      words: [technicians, 技术人员]
  - id: not-food
    title: Anything but food
    severity: info
    legal_basis: test
    when:
      all:
        - item: {categories: [food]}
        - not: {item: {categories: [industrial-machinery]}}
  - id: disabled-rule
    title: Disabled
    severity: info
    enabled: false
    legal_basis: test
    when: {words: [anything]}
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return rules_from(tmp_path_factory.mktemp("rules"), RULES)


def test_hs_range_fires_with_item_evidence(rules: RuleSet) -> None:
    alerts = evaluate(report(items=[{"description": "rice"}, {"description": "lathes"}]), rules, NOW)
    (alert,) = [a for a in alerts if a.rule_id == "machinery"]
    assert alert.severity is Severity.HIGH
    assert [m.index for m in alert.matched_items] == [1]
    assert alert.matched_items[0].hs_code == "8458"
    assert (
        "HS 8458 (classified from the description) falls in chapters 84 to 85"
        in alert.matched_items[0].evidence
    )
    assert alert.legal_basis == "UNSCR 2397 OP7"
    assert alert.tags == ["unscr-2397"]


def test_escalation_and_its_reason(rules: RuleSet) -> None:
    alerts = evaluate(report(items=[{"description": "used lathe"}]), rules, NOW)
    (alert,) = [a for a in alerts if a.rule_id == "machinery"]
    assert alert.severity is Severity.CRITICAL
    assert "severity raised to critical: second-hand" in alert.evidence


def test_other_destination_does_not_fire(rules: RuleSet) -> None:
    alerts = evaluate(report(destination_country="VN", items=[{"description": "lathe"}]), rules, NOW)
    assert "machinery" not in {a.rule_id for a in alerts}


def test_exception_suppresses_and_says_so(rules: RuleSet) -> None:
    r = report(importer="approved farm co.", items=[{"description": "tractor"}, {"description": "lathe"}])
    verdicts = {v.rule_id: v for v in explain(r, rules, NOW)}
    assert verdicts["machinery"].alert is None
    assert (
        verdicts["machinery"].suppressed_by == "exception approved-importer: licensed by the 1718 Committee"
    )
    other = report(importer="Another Trading Co", items=[{"description": "lathe"}])
    assert "machinery" in {a.rule_id for a in evaluate(other, rules, NOW)}


def test_prices_convert_through_the_rates_table(rules: RuleSet) -> None:
    cheap = report(items=[{"description": "seeder", "unit_price": 600, "currency": "USD"}])
    dear = report(items=[{"description": "seeder", "unit_price": 800, "currency": "USD"}])
    assert "pricey" not in {a.rule_id for a in evaluate(cheap, rules, NOW)}
    (alert,) = [a for a in evaluate(dear, rules, NOW) if a.rule_id == "pricey"]
    assert "unit price 800 USD (about 5,797 CNY) is at least 5,000 CNY" in alert.matched_items[0].evidence


def test_words_in_text_in_any_language(rules: RuleSet) -> None:
    assert "words" in {a.rule_id for a in evaluate(report(text="中国技术人员入境安装设备"), rules, NOW)}
    assert "words" in {a.rule_id for a in evaluate(report(text="Technicians travelled in."), rules, NOW)}
    assert "words" not in {a.rule_id for a in evaluate(report(text="technicianship"), rules, NOW)}


def test_not_and_disabled(rules: RuleSet) -> None:
    fired = {a.rule_id for a in evaluate(report(items=[{"description": "rice"}]), rules, NOW)}
    assert "not-food" in fired
    assert "disabled-rule" not in fired
    mixed = {
        a.rule_id
        for a in evaluate(report(items=[{"description": "rice"}, {"description": "lathe"}]), rules, NOW)
    }
    assert "not-food" not in mixed


def test_same_report_same_alert_ids(rules: RuleSet) -> None:
    r = report(items=[{"description": "lathe"}])
    first = [a.alert_id for a in evaluate(r, rules, NOW)]
    again = [a.alert_id for a in evaluate(r, rules, datetime(2027, 1, 1, tzinfo=UTC))]
    assert first == again


def test_errors_are_all_reported_with_lines(tmp_path: Path) -> None:
    bad = """version: 1
rules:
  - id: one
    title: One
    severity: high
    legal_basis: x
    colour: red
    when: {item: {hs: ["8A"]}}
  - id: two
    title: Two
    severity: urgent
    legal_basis: x
    when: {}
  - id: three
    title: Three
    severity: low
    legal_basis: x
    realert: soon
    when: {item: {categories: [spaceships]}}
  - id: three
    title: Three again
    severity: low
    legal_basis: x
    when: {words: [x]}
"""
    with pytest.raises(ConfigError) as caught:
        rules_from(tmp_path, bad)
    text = str(caught.value)
    assert "rules.yaml:7: rules[0].colour: unknown key 'colour'; the keys here are id, title," in text
    assert "rules.yaml:8: rules[0].when.item.hs[0]: '8A' is not an HS code" in text
    assert "not an HS code prefix" in text
    assert (
        "rules.yaml:11: rules[1].severity: 'urgent' is not one of info, low, medium, high, critical" in text
    )
    assert "rules.yaml:13: rules[1].when" in text
    assert "empty condition" in text
    assert "rules.yaml:18: rules[2].realert" in text
    assert "not a duration" in text


def test_unknown_category_and_duplicate_id_are_reported(tmp_path: Path) -> None:
    bad = """version: 1
rules:
  - id: three
    title: Three
    severity: low
    legal_basis: x
    when: {item: {categories: [spaceships]}}
  - id: three
    title: Again
    severity: low
    legal_basis: x
    when: {words: [x]}
"""
    with pytest.raises(ConfigError) as caught:
        rules_from(tmp_path, bad)
    text = str(caught.value)
    assert (
        "rules.yaml:7: rules[0].when.item.categories[0]: 'spaceships' is not a category of the catalog"
        in text
    )
    assert "rules.yaml:8: rules[1].id: rule id 'three' is already defined" in text


def test_shipped_pack_loads_and_spares_food(pack: RuleSet) -> None:
    food = report(
        items=[{"description": "rice"}, {"description": "wheat flour"}, {"description": "medicine"}]
    )
    assert [a for a in evaluate(food, pack, NOW) if a.severity.rank >= Severity.MEDIUM.rank] == []


def test_an_escalation_on_some_items_raises_those_items_only(rules: RuleSet) -> None:
    alerts = evaluate(
        report(items=[{"description": "lathes", "condition": "used"}, {"description": "presses"}]), rules, NOW
    )
    (alert,) = [a for a in alerts if a.rule_id == "machinery"]
    used, new = alert.matched_items
    assert alert.severity is Severity.CRITICAL  # the alert is as bad as its worst item
    assert used.severity is Severity.CRITICAL
    assert used.severity_reason == "severity raised to critical: second-hand"
    assert new.severity is Severity.HIGH
    assert new.severity_reason is None
