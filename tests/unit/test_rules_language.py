"""The rule language's newer parts: lowering severity, exception files, rules over time, strictness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.alert import Severity
from schemas.report import ImportReport
from services.goods.catalog import Catalog
from services.rules.engine import RuleSet, evaluate, explain
from services.rules.loader import load_ruleset
from services.rules.temporal import MemoryState, Pending, settle
from services.yamlfile import ConfigError
from tests.helpers import CATALOG_FILE as CATALOG
from tests.helpers import NOW, ROOT, rules_from, write
from tests.helpers import RATES_FILE as RATES
from tests.helpers import RULES_FILE as PACK
from tests.helpers import make_report as report


def fired(r: ImportReport, ruleset: RuleSet) -> dict[str, Severity]:
    return {a.rule_id: a.severity for a in evaluate(r, ruleset, NOW)}


# ---------------------------------------------------------------- the shipped pack


def test_medical_equipment_is_lower_with_an_exemption_reference(pack: RuleSet) -> None:
    plain = report(items=[{"description": "ultrasound diagnostic equipment"}])
    exempt = report(
        items=[{"description": "ultrasound diagnostic equipment"}],
        text="Shipped under 1718 Committee exemption 2026/014.",
    )
    assert fired(plain, pack)["medical-imaging-review"] is Severity.MEDIUM
    (alert,) = [a for a in evaluate(exempt, pack, NOW) if a.rule_id == "medical-imaging-review"]
    assert alert.severity is Severity.LOW
    assert any(e.startswith("severity lowered to low: an exemption reference") for e in alert.evidence)


def test_second_hand_and_disassembled_raise_severity(pack: RuleSet) -> None:
    assert fired(report(items=[{"description": "excavator"}]), pack)["unscr2397-machinery"] is Severity.HIGH
    assert (
        fired(report(items=[{"description": "二手挖掘机"}]), pack)["unscr2397-machinery"] is Severity.CRITICAL
    )
    assert (
        fired(report(items=[{"description": "truck in parts"}]), pack)["unscr2397-vehicles"]
        is Severity.CRITICAL
    )


def test_high_value_units_and_technicians(pack: RuleSet) -> None:
    # A unit of USD 20,000 and more, or a line of USD 100,000 and more (the reasons are in the file).
    dear = report(items=[{"description": "excavator", "unit_price": 20000, "currency": "USD"}])
    cheap = report(items=[{"description": "excavator", "unit_price": 19999, "currency": "USD"}])
    fleet = report(items=[{"description": "tractor", "quantity": 20, "unit_price": 5000, "currency": "USD"}])
    few = report(items=[{"description": "tractor", "quantity": 19, "unit_price": 5000, "currency": "USD"}])
    assert "high-value-machinery" in fired(dear, pack)
    assert "high-value-machinery" not in fired(cheap, pack)
    assert "high-value-machinery" in fired(fleet, pack)
    assert "high-value-machinery" not in fired(few, pack)
    assert fired(report(text="중국 기술자들이 설치를 도왔다"), pack)["technical-assistance"] is Severity.HIGH


def test_every_rule_of_the_pack_keeps_its_legal_basis(pack: RuleSet) -> None:
    assert all(c.rule.legal_basis.strip() for c in pack.rules)
    assert {"machinery-surge-by-crossing", "new-machinery-heading"} <= {c.rule.id for c in pack.rules}


def test_food_medicine_and_everyday_goods_never_reach_medium(pack: RuleSet, catalog: Catalog) -> None:
    # Every term the catalog knows for such goods, in every language, dressed to trip the
    # escalations and the value rule: second-hand, in parts, dear, with a declared code.
    everyday = {"food", "medicine", "consumer-goods"}
    banned = set(catalog.categories) - everyday
    checked = 0
    for item in catalog.file.items:
        cats = set(item.categories) | catalog.hs_categories(item.hs)
        if not cats & everyday or cats & banned:
            continue
        for _, term in item.all():
            for extra in ({}, {"hs_code": item.hs}):
                r = report(
                    report_id=f"r-{checked}",
                    items=[
                        {
                            "description": f"used {term} in parts",
                            "unit_price": 90_000,
                            "currency": "CNY",
                            **extra,
                        }
                    ],
                )
                loud = {k: v for k, v in fired(r, pack).items() if v.rank >= Severity.MEDIUM.rank}
                assert not loud, f"{term!r} raises {loud}"
                checked += 1
    assert checked >= 20


def test_everyday_goods_in_a_banned_chapter_are_listed_low(pack: RuleSet) -> None:
    r = report(items=[{"description": "rice", "hs_code": "8437"}])  # a mis-keyed code
    assert fired(r, pack) == {"everyday-goods-in-banned-chapters": Severity.LOW}


# ---------------------------------------------------------------- rules over time


SURGE = """version: 1
rules:
  - id: surge
    title: Surge
    severity: high
    legal_basis: test
    when: {item: {hs: ["84"]}}
    frequency: {count: 3, window: 1d, per: [crossing]}
  - id: heading
    title: New heading
    severity: low
    legal_basis: test
    when: {item: {hs: ["84"]}}
    new_term: {field: hs_heading}
"""


@pytest.fixture(scope="module")
def surge_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return rules_from(tmp_path_factory.mktemp("surge"), SURGE)


def pending_of(r: ImportReport, ruleset: RuleSet, rule_id: str, at: datetime = NOW) -> Pending:
    (verdict,) = [v for v in explain(r, ruleset, at) if v.rule_id == rule_id]
    assert verdict.alert is None
    assert verdict.pending is not None
    return verdict.pending


def test_frequency_counts_per_crossing_once_per_report_then_restarts(surge_rules: RuleSet) -> None:
    state = MemoryState()

    def at(rid: str, crossing: str, when: datetime) -> bool:
        p = pending_of(
            report(rid, crossing=crossing, items=[{"description": "lathe"}]), surge_rules, "surge", when
        )
        return settle(p, state.decide(p, when)) is not None

    assert not at("a", "Dandong-Sinuiju", NOW)
    assert not at("a", "dandong sinuiju", NOW)  # redelivered: not counted again
    assert not at("x", "Changbai-Hyesan", NOW)  # another crossing counts apart
    assert not at("b", "DANDONG-SINUIJU", NOW + timedelta(hours=1))
    assert at("c", "Dandong-Sinuiju", NOW + timedelta(hours=2))
    assert at("c", "Dandong-Sinuiju", NOW + timedelta(hours=2))  # its redelivery fires the same way
    assert not at("d", "Dandong-Sinuiju", NOW + timedelta(hours=3))  # the count restarted
    assert not at("e", "Dandong-Sinuiju", NOW + timedelta(days=2))  # d fell out of the window
    assert not at("f", "Dandong-Sinuiju", NOW + timedelta(days=2, hours=1))
    assert at("g", "Dandong-Sinuiju", NOW + timedelta(days=2, hours=2))


def test_frequency_alert_says_how_many_and_which(surge_rules: RuleSet) -> None:
    state = MemoryState()
    alert = None
    for rid in ("a", "b", "c"):
        p = pending_of(
            report(rid, crossing="Dandong", items=[{"description": "lathe"}]), surge_rules, "surge"
        )
        alert = settle(p, state.decide(p, NOW))
    assert alert is not None
    assert (
        "3 matching reports with crossing=dandong sinuiju within 1d (threshold 3): "
        "a (2026-03-10), b (2026-03-10), c (2026-03-10)" in alert.evidence
    )


def test_a_report_without_the_per_field_joins_no_group(surge_rules: RuleSet) -> None:
    verdicts = explain(report(items=[{"description": "lathe"}]), surge_rules, NOW)
    assert "surge" not in {v.rule_id for v in verdicts}


def test_new_term_fires_once_per_value(surge_rules: RuleSet) -> None:
    state = MemoryState()

    def new(rid: str, *descriptions: str) -> tuple[str, ...] | None:
        p = pending_of(report(rid, items=[{"description": d} for d in descriptions]), surge_rules, "heading")
        alert = settle(p, state.decide(p, NOW))
        return None if alert is None else state.decide(p, NOW).new_terms

    assert new("a", "lathe") == ("8458",)
    assert new("b", "lathe") is None
    assert new("c", "lathe", "bulldozer") == ("8429",)
    assert new("c", "lathe", "bulldozer") == ("8429",)  # the same report again: the same answer


# ---------------------------------------------------------------- exception files and strictness


def test_exceptions_appended_from_a_team_file(tmp_path: Path) -> None:
    extra = write(
        tmp_path,
        "team.yaml",
        "version: 1\nexceptions:\n  unscr2397-machinery:\n"
        "    - id: approved\n      reason: licensed\n      importer: [Approved Farm Co]\n"
        "      expires: 2026-12-31\n",
    )
    rules = load_ruleset([PACK], CATALOG, RATES, [extra])
    r = report(importer="approved farm co.", items=[{"description": "lathe"}])
    verdicts = {v.rule_id: v for v in explain(r, rules, NOW)}
    assert verdicts["unscr2397-machinery"].suppressed_by == "exception approved: licensed"
    later = {v.rule_id: v for v in explain(r, rules, datetime(2027, 1, 1, tzinfo=UTC))}
    assert later["unscr2397-machinery"].alert is not None  # expired


def test_exception_file_errors_have_file_line_and_sentence(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "team.yaml",
        """version: 1
exceptions:
  no-such-rule:
    - {id: x, reason: y, importer: [Z]}
  unscr2397-machinery:
    - id: one
      reason: fine
      importr: [Typo Co]
    - id: two
      reason: nothing to match on
    - id: three
      reason: bad date
      importer: [A]
      expires: next year
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_ruleset([PACK], CATALOG, RATES, [bad])
    text = str(caught.value)
    assert (
        f"{bad}:8: exceptions.unscr2397-machinery[0].importr: unknown key 'importr'; did you mean 'importer'?"
        in text
    )
    assert f"{bad}:9: exceptions.unscr2397-machinery[1]: an exception needs at least one field" in text
    assert (
        f"{bad}:14: exceptions.unscr2397-machinery[2].expires: expects a date written as 2026-12-31,"
        " not the text 'next year'" in text
    )
    # The unknown rule is found once the file's shape is right.
    fixed = write(
        tmp_path,
        "team2.yaml",
        "version: 1\nexceptions:\n  no-such-rule:\n    - {id: x, reason: y, importer: [Z]}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_ruleset([PACK], CATALOG, RATES, [fixed])
    assert (
        f"{fixed}:3: exceptions.no-such-rule: no rule has the id 'no-such-rule',"
        " so its exceptions would never apply" in str(caught.value)
    )


def test_rules_over_time_are_checked_strictly(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "r.yaml",
        """version: 1
rules:
  - id: a
    title: A
    severity: high
    legal_basis: x
    when: {words: [x]}
    frequency: {count: 3, window: often, per: [crossing]}
  - id: b
    title: B
    severity: high
    legal_basis: x
    when: {words: [x]}
    frequency: {count: 3, window: 1d, per: [harbour]}
  - id: c
    title: C
    severity: high
    legal_basis: x
    when: {words: [x]}
    new_term: {field: hs_heading, window: 1d}
  - id: d
    title: D
    severity: high
    legal_basis: x
    when: {words: [x]}
    escalate:
      - {when: {words: [y]}, to: high, reason: same}
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_ruleset([bad], CATALOG, RATES)
    text = str(caught.value)
    assert "r.yaml:8: rules[0].frequency.window: 'often' is not a duration" in text
    assert (
        "r.yaml:14: rules[1].frequency.per[0]: 'harbour' is not one of report_id, source, crossing," in text
    )
    assert "r.yaml:20: rules[2].new_term.window: unknown key 'window'; the keys here are field" in text


def test_escalation_to_the_same_severity_is_an_error(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "r.yaml",
        """version: 1
rules:
  - id: d
    title: D
    severity: high
    legal_basis: x
    when: {words: [x]}
    escalate:
      - {when: {words: [y]}, to: high, reason: same}
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_ruleset([bad], CATALOG, RATES)
    assert (
        "r.yaml:9: rules[0].escalate[0].to: escalation to high leaves the severity of rule 'd' as it is"
        in str(caught.value)
    )


def test_a_raise_beats_a_lowering(tmp_path: Path) -> None:
    rules = load_ruleset(
        [
            write(
                tmp_path,
                "r.yaml",
                """version: 1
rules:
  - id: m
    title: M
    severity: medium
    legal_basis: x
    when: {item: {hs: ["84"]}}
    escalate:
      - {when: {words: [exemption]}, to: low, reason: exemption}
      - {when: {item: {condition: [used]}}, to: high, reason: second-hand}
""",
            )
        ],
        CATALOG,
        RATES,
    )
    assert fired(report(text="exemption", items=[{"description": "lathe"}]), rules)["m"] is Severity.LOW
    assert fired(report(text="exemption", items=[{"description": "used lathe"}]), rules)["m"] is Severity.HIGH


def test_the_example_exceptions_file_loads_and_applies() -> None:
    rules = load_ruleset([PACK], CATALOG, RATES, [ROOT / "config/exceptions.example.yaml"])
    r = report(
        importer="Ryanggang Provincial People's Hospital",
        items=[{"description": "X-ray machine", "hs_code": "9022.14"}],
    )
    verdicts = {v.rule_id: v for v in explain(r, rules, NOW)}
    assert verdicts["medical-imaging-review"].suppressed_by is not None
