"""The anchor index: with 10,000 rules only the candidates are evaluated, and results never change."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.report import ImportReport
from schemas.rules import Rule
from services.goods.catalog import Catalog
from services.money import Rates
from services.rules.engine import CompiledRule, RuleSet, compile_rules, explain
from tests.helpers import NOW, examples


def rule(rule_id: str, when: dict[str, Any], **more: Any) -> Rule:
    return Rule.model_validate(
        {"id": rule_id, "title": rule_id, "severity": "medium", "legal_basis": "test", "when": when, **more}
    )


def counting(ruleset: RuleSet) -> tuple[RuleSet, list[str]]:
    """The same rule set, each rule's test wrapped to record that it ran."""
    calls: list[str] = []

    def wrap(compiled: CompiledRule) -> CompiledRule:
        inner = compiled.test

        def test(facts: Any) -> Any:
            calls.append(compiled.rule.id)
            return inner(facts)

        return dataclasses.replace(compiled, test=test)

    return dataclasses.replace(ruleset, rules=tuple(wrap(c) for c in ruleset.rules)), calls


def generated_rules(n: int) -> list[Rule]:
    rules = []
    for i in range(n):
        kind = i % 3
        if kind == 0:  # a 6-digit heading of its own
            when = {"all": [{"destination_country": ["KP"]}, {"item": {"hs": [f"84{i:04d}"]}}]}
        elif kind == 1:  # a word of its own
            when = {"words": [f"zq{i}"]}
        else:  # a range of 6-digit codes in chapter 85
            when = {"item": {"hs": [f"85{i:04d}-85{i:04d}"], "condition": ["used"]}}
        rules.append(rule(f"r{i}", when))
    # Rules no anchor can be found for are always evaluated.
    rules.append(rule("not-food", {"not": {"item": {"categories": ["food"]}}}))
    rules.append(rule("pricey", {"item": {"unit_price": {"gte": 1, "currency": "USD"}}}))
    return rules


def test_ten_thousand_rules_only_candidates_are_evaluated(catalog: Catalog, rates: Rates) -> None:
    ruleset, calls = counting(compile_rules(generated_rules(10_000), catalog, rates))
    report = ImportReport.model_validate({
        "report_id": "r", "source": "t", "destination_country": "KP", "text": "mentions zq4 and zq7",
        "items": [{"hs_code": "840003"}, {"hs_code": "850005", "condition": "used"}, {"description": "rice"}],
    })  # fmt: skip

    verdicts = explain(report, ruleset, NOW)

    # r3 (its heading), r4 and r7 (their words), r5 (its range), and the two unanchored rules.
    assert sorted(calls) == sorted(["r3", "r4", "r5", "r7", "not-food", "pricey"])
    assert {v.rule_id for v in verdicts} == {"r3", "r4", "r5", "r7"}
    calls.clear()
    unindexed = explain(report, ruleset, NOW, use_index=False)
    assert len(calls) == 10_002
    assert unindexed == verdicts


# ---------------------------------------------------------------- same results with and without

HS = ["84", "8456", "845611", "84-85", "72-83", "8701", "86-89", "9022", "19"]
CATEGORIES = ["machine-tools", "shipyard-equipment", "medical-devices", "food", "dual-use", "vehicles"]
WORDS = ["technicians", "shipyard", "二手", "exemption", "tractor"]

item_leaf = st.one_of(
    st.builds(lambda v: {"hs": v}, st.lists(st.sampled_from(HS), min_size=1, max_size=2)),
    st.builds(lambda v: {"categories": v}, st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2)),
    st.builds(lambda v: {"words": v}, st.lists(st.sampled_from(WORDS), min_size=1, max_size=2)),
    st.builds(lambda v: {"condition": [v]}, st.sampled_from(["used", "new"])),
    st.builds(lambda v: {"disassembled": v}, st.booleans()),
)
item_cond = st.recursive(
    item_leaf,
    lambda inner: st.one_of(
        st.builds(lambda v: {"all": v}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda v: {"any": v}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda v: {"not": v}, inner),
        st.builds(lambda a, b: {**a, **b}, inner, inner),
    ),
    max_leaves=4,
)
report_leaf = st.one_of(
    st.builds(lambda v: {"item": v}, item_cond),
    st.builds(lambda v: {"words": v}, st.lists(st.sampled_from(WORDS), min_size=1, max_size=2)),
    st.builds(lambda v: {"destination_country": [v]}, st.sampled_from(["KP", "VN"])),
    st.builds(lambda v: {"source": [v]}, st.sampled_from(["a", "b"])),
)
report_cond = st.recursive(
    report_leaf,
    lambda inner: st.one_of(
        st.builds(lambda v: {"all": v}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda v: {"any": v}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda v: {"not": v}, inner),
    ),
    max_leaves=5,
)
DESCRIPTIONS = [
    "lathe",
    "used CNC lathe",
    "rice",
    "X-ray machine",
    "tractor",
    "shipyard welding machine",
    "steel",
]
items = st.lists(
    st.fixed_dictionaries(
        {"description": st.sampled_from(DESCRIPTIONS)},
        optional={"hs_code": st.sampled_from(["845811", "8701", "902214", "1006", "7208"])},
    ),
    min_size=1,
    max_size=3,
)
reports = st.builds(
    lambda its, text, dest, source: ImportReport.model_validate(
        {
            "report_id": "r",
            "source": source,
            "destination_country": dest,
            "items": its,
            "text": text,
        }
    ),
    items,
    st.sampled_from(["", "technicians arrived", "二手 goods", "nothing to see"]),
    st.sampled_from(["KP", "VN"]),
    st.sampled_from(["a", "b"]),
)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(report_cond, min_size=1, max_size=6), reports)
def test_the_index_never_changes_a_result(
    catalog: Catalog, rates: Rates, conditions: list[dict[str, Any]], report: ImportReport
) -> None:
    ruleset = compile_rules([rule(f"r{i}", c) for i, c in enumerate(conditions)], catalog, rates)
    assert explain(report, ruleset, NOW) == explain(report, ruleset, NOW, use_index=False)
