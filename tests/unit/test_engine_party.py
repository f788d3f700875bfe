"""The ``party:`` condition in the pure engine: the screening index comes in as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.report import ImportReport
from services.rules.engine import RuleSet, evaluate
from services.sanctions.index import ScreeningIndex
from services.yamlfile import ConfigError
from tests.helpers import NOW, make_report, rules_from

RULES = """
version: 1
rules:
  - id: listed-party
    title: Listed party
    severity: critical
    legal_basis: UNSCR 1718 (2006) paragraph 8(d)
    when:
      party: {lists: [un-dprk], min_score: 0.9}
  - id: listed-importer-of-machinery
    title: Listed importer of machinery
    severity: critical
    legal_basis: test
    when:
      all:
        - item: {hs: ["84"]}
        - party: {lists: [un-sc], min_score: 0.95, roles: [importer]}
"""


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return rules_from(tmp_path_factory.mktemp("rules"), RULES)


def report(**fields: object) -> ImportReport:
    """A report with no destination: screening looks at names, not at where the goods go."""
    return make_report(destination_country=None, **fields)


def test_a_listed_importer_fires_with_entry_reference_alias_and_score(
    ruleset: RuleSet, sample_index: ScreeningIndex
) -> None:
    shipment = report(
        importer="Ryonhwa Machinery J.V. Co., Ltd.", items=[{"description": "lathes", "hs_code": "8458.11"}]
    )
    alerts = {a.rule_id: a for a in evaluate(shipment, ruleset, NOW, sample_index)}
    assert set(alerts) == {"listed-party", "listed-importer-of-machinery"}
    evidence = alerts["listed-party"].evidence
    assert evidence == [
        'importer "Ryonhwa Machinery J.V. Co., Ltd." matches KPe.016 KOREA RYONHA MACHINERY JOINT VENTURE '
        'CORPORATION (DPRK, listed 2013-01-22): alias "Ryonhwa Machinery JV", score 1.00'
    ]


def test_names_in_the_text_and_the_exporter_are_screened(
    ruleset: RuleSet, sample_index: ScreeningIndex
) -> None:
    news = report(
        exporter="Dandong Xinyuan Trading Co., Ltd.",
        text="Lathes went to the Chong Chon Gang Shipping Co. yard; 据报道，朝鲜联合机械贸易会社也收到了机床。",
    )
    alerts = evaluate(news, ruleset, NOW, sample_index)
    assert [a.rule_id for a in alerts] == ["listed-party"]
    evidence = " | ".join(alerts[0].evidence)
    assert 'named in the text: "Chong Chon Gang Shipping Co" matches KPe.022' in evidence
    assert 'alias "朝鲜联合机械贸易会社", score 1.00' in evidence
    assert "Xinyuan" not in evidence


def test_no_match_no_lists_or_another_regime_does_not_fire(
    ruleset: RuleSet, sample_index: ScreeningIndex
) -> None:
    assert (
        evaluate(report(importer="Korea Ryongsong Machinery Corp", text="x"), ruleset, NOW, sample_index)
        == []
    )
    assert (
        evaluate(report(importer="Korea Ryonha Machinery JV", text="x"), ruleset, NOW) == []
    )  # no index given
    # Listed, but on another regime's part of the list: only the un-sc rule could see it, and it wants items.
    assert (
        evaluate(report(importer="Example Riverside Trading LLC", text="x"), ruleset, NOW, sample_index) == []
    )


def test_min_score_decides(ruleset: RuleSet, sample_index: ScreeningIndex) -> None:
    typo = report(importer="Ryonha Machinary Corp", items=[{"hs_code": "845811"}])
    fired = {a.rule_id for a in evaluate(typo, ruleset, NOW, sample_index)}
    assert fired == {"listed-party"}  # about 0.94: above 0.9, below the second rule's 0.95


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("{lists: [], min_score: 0.9}", "party.lists: is empty: give at least one value"),
        ("{lists: [un-dprk], min_score: 1.5}", "party.min_score: 1.5 is out of range: it must be at most 1"),
        (
            "{lists: [un-dprk], roles: [consignee]}",
            "'consignee' is not one of importer, exporter, text, vessel",
        ),
        ("{lists: [un-dprk], fuzzy: true}", "unknown key 'fuzzy'"),
    ],
)
def test_a_bad_party_condition_is_refused_with_file_and_line(
    tmp_path: Path, condition: str, message: str
) -> None:
    rules = f"""
version: 1
rules:
  - id: p
    title: P
    severity: high
    legal_basis: x
    when:
      party: {condition}
"""
    with pytest.raises(ConfigError) as caught:
        rules_from(tmp_path, rules)
    assert message in str(caught.value)
    assert "rules.yaml:" in str(caught.value)


def test_a_reviewed_exception_holds_the_rule_back_and_the_verdict_says_why(
    ruleset: RuleSet, sample_index: ScreeningIndex
) -> None:
    from datetime import timedelta

    from schemas.sanctions import ScreeningException
    from services.rules.engine import explain
    from services.sanctions.matcher import exceptions_from

    excepted = ScreeningIndex.build(sample_index.entries)
    excepted.exceptions = exceptions_from(
        [
            ScreeningException(
                name="Ryonhwa Machinery J.V. Co., Ltd.",
                entry="KPe.016",
                by="a.analyst",
                reason="Chinese toolmaker, registration checked",
                expires=NOW + timedelta(days=30),
            )
        ]
    )
    shipment = report(importer="Ryonhwa Machinery JV Co Ltd", text="payment received")
    assert evaluate(shipment, ruleset, NOW, excepted) == []
    verdicts = {v.rule_id: v for v in explain(shipment, ruleset, NOW, excepted)}
    assert verdicts["listed-party"].alert is None
    assert verdicts["listed-party"].suppressed_by == (
        'screening skipped "Ryonhwa Machinery JV Co Ltd" against KPe.016 KOREA RYONHA MACHINERY JOINT VENTURE '
        f"CORPORATION: exception by a.analyst until {(NOW + timedelta(days=30)).date().isoformat()} "
        "(Chinese toolmaker, registration checked)"
    )
    assert "listed-importer-of-machinery" not in verdicts  # it wanted items too: nothing held back
    # Another party of the same report is still screened.
    both = report(importer="Ryonhwa Machinery JV Co Ltd", exporter="Chongchongang Shipping Co", text="x")
    fired = evaluate(both, ruleset, NOW, excepted)
    assert [a.rule_id for a in fired] == ["listed-party"]
    assert any(line.startswith("screening skipped") for line in fired[0].evidence)
