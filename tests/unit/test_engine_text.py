"""The engine reads a report's text: goods found in it fire rules, quoted; goods not recognised are named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.alert import Alert, Severity
from schemas.report import Condition, ImportReport
from services.rules.engine import RuleSet, evaluate, examine
from services.rules.loader import load_ruleset
from tests.fixtures.readme_example import readme_http_example
from tests.helpers import ROOT

NOW = datetime(2026, 3, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_ruleset(
        [ROOT / "config/rules.yaml"], ROOT / "config/catalog.yaml", ROOT / "config/rates.yaml"
    )


def by_rule(alerts: list[Alert]) -> dict[str, Alert]:
    return {a.rule_id: a for a in alerts}


def marked(quote: str | None, marks: list[tuple[int, int]]) -> str:
    text = quote or ""
    for start, end in reversed(marks):
        text = f"{text[:start]}[{text[start:end]}]{text[end:]}"
    return text


def test_the_readme_http_example_fires_on_the_goods_its_text_names(ruleset: RuleSet) -> None:
    example = readme_http_example()
    assert "items" not in example
    assert example["text"] == "used lathes"
    alerts = by_rule(evaluate(ImportReport.model_validate(example), ruleset, NOW))
    machinery = alerts["unscr2397-machinery"]
    assert machinery.severity is Severity.CRITICAL  # escalated: second-hand machinery
    assert any("second-hand" in e for e in machinery.evidence)
    [item] = machinery.matched_items
    assert item.hs_code == "8458"
    assert item.description == "lathes (used)"
    assert marked(item.quote, item.marks) == "[used] [lathes]"
    assert machinery.unrecognised == []


def test_text_gives_goods_conditions_crossing_and_countries_the_report_lacks(ruleset: RuleSet) -> None:
    report = ImportReport.model_validate({
        "report_id": "t-1",
        "source": "partner",
        "text": "Used fishing boats and walkie-talkies.\n"
        "Traders in Dandong said they went on to Sinuiju. 二手挖掘机也经丹东出口朝鲜。",
    })  # fmt: skip
    facts, verdicts = examine(report, ruleset, NOW)
    assert facts.report.destination_country == "KP"
    assert facts.report.origin_country == "CN"
    assert facts.report.crossing == "Dandong-Sinuiju"
    conditions = {i.cls.item_ids[0]: i.item.condition for i in facts.items}
    assert conditions == {
        "fishing-vessel": Condition.USED,
        "radio-transceiver": Condition.UNKNOWN,  # "Used" qualifies the boats, not the radios
        "excavator": Condition.USED,
    }
    alerts = by_rule([v.alert for v in verdicts if v.alert is not None])
    assert {"vessels", "radio-telecom", "unscr2397-machinery"} <= set(alerts)
    assert alerts["radio-telecom"].severity is Severity.HIGH
    assert alerts["unscr2397-machinery"].severity is Severity.CRITICAL  # the used excavators
    [radio] = alerts["radio-telecom"].matched_items
    assert marked(radio.quote, radio.marks) == "Used fishing boats and [walkie-talkies]."
    [boat] = alerts["vessels"].matched_items
    assert marked(boat.quote, boat.marks) == "[Used] [fishing boats] and walkie-talkies."
    assert alerts["vessels"].crossing == "Dandong-Sinuiju"


def test_what_a_report_states_is_kept_over_what_its_text_says(ruleset: RuleSet) -> None:
    report = ImportReport.model_validate(
        {"report_id": "t-2", "source": "s", "destination_country": "RU", "text": "lathes for North Korea"}
    )
    facts, _ = examine(report, ruleset, NOW)
    assert facts.report.destination_country == "RU"
    assert [i.cls.hs_code for i in facts.items] == ["8458"]
    assert evaluate(report, ruleset, NOW) == []  # not bound for the DPRK as reported


def test_a_text_without_goods_yields_no_items_and_fires_nothing(ruleset: RuleSet) -> None:
    report = ImportReport.model_validate(
        {"report_id": "t-3", "source": "s", "destination_country": "KP", "text": "Trade was quiet this week."}
    )
    facts, verdicts = examine(report, ruleset, NOW)
    assert facts.items == ()
    assert [v for v in verdicts if v.alert is not None] == []


def test_the_items_ingest_found_in_an_article_are_quoted_from_it(ruleset: RuleSet) -> None:
    assert ruleset.extractor is not None
    article = ruleset.extractor.report(
        "Border trade picked up. Two used lathes and a tractor came via Dandong.", "article", "a-1"
    )
    assert article.items  # found at ingest, as the article source does
    alerts = by_rule(evaluate(article, ruleset, NOW))
    [lathe] = alerts["unscr2397-machinery"].matched_items
    assert marked(lathe.quote, lathe.marks) == "Two [used] [lathes] and a tractor came via Dandong."
    [tractor] = alerts["unscr2397-vehicles"].matched_items
    assert marked(tractor.quote, tractor.marks) == "Two used lathes and a [tractor] came via Dandong."
    # A report's own items are not quoted from whatever its text says.
    ledger = ImportReport.model_validate({
        "report_id": "t-4",
        "source": "s",
        "destination_country": "KP",
        "items": [{"description": "lathes"}],
        "text": "Two used lathes came via Dandong.",
    })  # fmt: skip
    assert by_rule(evaluate(ledger, ruleset, NOW))["unscr2397-machinery"].matched_items[0].quote is None


def test_items_the_catalog_does_not_recognise_are_named_in_every_alert(ruleset: RuleSet) -> None:
    report = ImportReport.model_validate({
        "report_id": "t-5",
        "source": "s",
        "destination_country": "KP",
        "items": [
            {"description": "CNC lathes"},
            {"description": "assorted widgets, model ZX-9"},
            {"description": "used"},  # a marker and nothing else
            {"description": "mystery crates", "hs_code": "8479"},  # a declared code is enough
            {"hs_code": "8458"},
        ],
    })  # fmt: skip
    facts, verdicts = examine(report, ruleset, NOW)
    assert facts.unrecognised == ("assorted widgets, model ZX-9", "used")
    alerts = [v.alert for v in verdicts if v.alert is not None]
    assert alerts
    assert all(a.unrecognised == ["assorted widgets, model ZX-9", "used"] for a in alerts)
    assert Alert.model_validate_json(alerts[0].model_dump_json()) == alerts[0]
