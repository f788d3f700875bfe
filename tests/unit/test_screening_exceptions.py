"""Screening exceptions in the pure engine: a reviewed "not this party" skips that name for that
listed entry, visibly, until it lapses; other names and other entries are screened as before."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from schemas.sanctions import ScreeningException
from services.rules.engine import evaluate
from services.sanctions.exceptions import in_force, name_key
from services.sanctions.index import ScreeningIndex
from services.sanctions.lists import read_list
from services.sanctions.matcher import PartyScreen
from tests.unit.test_engine import NOW, ruleset_from
from tests.unit.test_engine_party import RULES, report
from tests.unit.test_sanctions_match import SAMPLE_XML


@pytest.fixture(scope="module")
def index() -> ScreeningIndex:
    return ScreeningIndex.build(read_list(SAMPLE_XML, "un-sc").entries)


def exception(
    name: str = "Ryonhwa Machinery J.V. Co., Ltd.", entry: str = "KPe.016", days: int = 30
) -> ScreeningException:
    return ScreeningException(
        id=7, name=name, entry=entry, reason="a different company in Dalian", by="rita",
        until=NOW + timedelta(days=days), case_id=3,
    )  # fmt: skip


SHIPMENT = {
    "importer": "Ryonhwa Machinery J.V. Co., Ltd.",
    "items": [{"description": "lathes", "hs_code": "8458.11"}],
}


def test_names_compare_as_screening_compares_them() -> None:
    assert name_key("Ryonhwa Machinery J.V. Co., Ltd.") == name_key("RYONHWA MACHINERY JV")
    assert name_key("Ryonhwa Machinery") != name_key("Ryonha Trading")


def test_an_exception_skips_its_match_and_the_alerts_say_so(tmp_path: Path, index: ScreeningIndex) -> None:
    ruleset = ruleset_from(tmp_path, RULES)
    shipment = report(**SHIPMENT)
    assert {a.rule_id for a in evaluate(shipment, ruleset, NOW, index)} == {
        "listed-party", "listed-importer-of-machinery",
    }  # fmt: skip
    excepted = index.with_exceptions(in_force([exception()], NOW))
    assert evaluate(shipment, ruleset, NOW, excepted) == []
    screen = PartyScreen(excepted, shipment)
    assert screen.found() == []
    assert screen.skipped == [
        'screening skipped importer "Ryonhwa Machinery J.V. Co., Ltd." as KPe.016: exception 7 by rita '
        f"until {(NOW + timedelta(days=30)).date()} (a different company in Dalian)"
    ]
    assert excepted.entries is index.entries  # the lists' index is shared, not rebuilt


def test_an_exception_for_another_entry_or_name_skips_nothing(tmp_path: Path, index: ScreeningIndex) -> None:
    ruleset = ruleset_from(tmp_path, RULES)
    shipment = report(**SHIPMENT)
    for other in (exception(entry="KPe.001"), exception(name="Ryonha Trading Co.")):
        excepted = index.with_exceptions(in_force([other], NOW))
        assert {a.rule_id for a in evaluate(shipment, ruleset, NOW, excepted)} == {
            "listed-party", "listed-importer-of-machinery",
        }  # fmt: skip


def test_a_lapsed_exception_is_not_in_force() -> None:
    assert in_force([exception(days=-1)], NOW) == ()
    assert len(in_force([exception(days=1)], NOW)) == 1


def test_what_still_matches_is_said_beside_what_was_skipped(tmp_path: Path, index: ScreeningIndex) -> None:
    ruleset = ruleset_from(tmp_path, RULES)
    news = report(
        importer="Ryonhwa Machinery J.V. Co., Ltd.",
        text="Lathes went to the Chong Chon Gang Shipping Co. yard.",
    )
    excepted = index.with_exceptions(in_force([exception()], NOW))
    (alert,) = evaluate(news, ruleset, NOW, excepted)
    assert alert.rule_id == "listed-party"
    assert any("Chong Chon Gang" in line and "matches" in line for line in alert.evidence)
    assert any(line.startswith('screening skipped importer "Ryonhwa') for line in alert.evidence)
