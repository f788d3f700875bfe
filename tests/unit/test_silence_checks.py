"""Silences are checked like rules: a matcher no alert could satisfy is refused, with what was meant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.goods.catalog import Catalog, load_catalog
from services.goods.hscodes import load_nomenclature
from services.notify.silences import Known, check_matchers, parse_matchers
from services.rules import live
from services.rules.loader import load_ruleset
from tests.helpers import ROOT

RULES = {"shipyard-equipment": ["unscr-2397", "shipyard"], "radio-telecom": ["unscr-2397"]}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(ROOT / "config/catalog.yaml")


@pytest.fixture
def known(catalog: Catalog) -> Known:
    return Known(catalog, RULES, "the live rule set (version v1)", ["compliance", "ops"])


def refused(matchers: dict[str, str], known: Known) -> str:
    with pytest.raises(ValueError) as caught:
        check_matchers(matchers, known)
    return str(caught.value)


def test_values_are_stored_as_alerts_carry_them(known: Known) -> None:
    assert check_matchers(
        {
            "crossing": "丹东",
            "country": "North Korea",
            "severity": "HIGH",
            "hs": "8456.11",
            "rule_id": "radio-telecom",
            "tag": "shipyard",
            "category": "vessels",
            "subscription": "ops",
            "importer": "Anyone Co",
        },
        known,
    ) == {
        "crossing": "Dandong-Sinuiju",
        "country": "KP",
        "severity": "high",
        "hs": "845611",
        "rule_id": "radio-telecom",
        "tag": "shipyard",
        "category": "vessels",
        "subscription": "ops",
        "importer": "Anyone Co",
    }


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "crossing",
            "Hunchon",
            "'Hunchon' is not a crossing the catalog knows; did you mean Hunchun-Rason (Wonjong-ri)?",
        ),
        (
            "crossing",
            "Namyang",
            "the crossings are Dandong-Sinuiju, Hunchun-Rason (Wonjong-ri), Changbai-Hyesan",
        ),
        (
            "severity",
            "hihg",
            "'hihg' is not a severity; use one of info, low, medium, high, critical; did you mean 'high'?",
        ),
        (
            "rule_id",
            "shipyard-equipmnt",
            "no rule has the id 'shipyard-equipmnt' in the live rule set (version v1), so nothing would be held;"
            " did you mean 'shipyard-equipment'?",
        ),
        ("tag", "unscr2397", "no rule of the live rule set (version v1) has the tag 'unscr2397'"),
        ("tag", "unscr2397", "did you mean 'unscr-2397'?"),
        (
            "category",
            "shipyard",
            "'shipyard' is not a category of the catalog; did you mean shipyard-equipment?",
        ),
        ("country", "NK", "'NK' is not an ISO country code (did you mean KP, North Korea?)"),
        ("hs", "7701", "7701 is in chapter 77, and chapter 77 is reserved in the HS: it holds no goods"),
        ("hs", "84a", "'84a' is not an HS code or prefix (2 to 10 digits, dots allowed)"),
        (
            "subscription",
            "complience",
            "there is no subscription 'complience', so nothing would be held; did you mean 'compliance'?",
        ),
    ],
)
def test_a_matcher_that_holds_nothing_is_refused(known: Known, key: str, value: str, message: str) -> None:
    text = refused({key: value}, known)
    assert text.startswith(f"{key}={value}: ")
    assert message in text


def test_every_refusal_is_told_at_once(known: Known) -> None:
    text = refused({"crossing": "Hunchon", "severity": "urgent", "source": "anything"}, known)
    assert text.splitlines()[0].startswith("crossing=Hunchon: ")
    assert text.splitlines()[1].startswith("severity=urgent: ")
    assert len(text.splitlines()) == 2


def test_what_is_not_known_here_is_not_checked() -> None:
    anything = {"crossing": "Hunchon", "rule_id": "nope", "category": "x", "subscription": "y"}
    assert check_matchers(anything, Known()) == anything


def test_hs_codes_are_checked_against_the_nomenclature_when_given(tmp_path: Path) -> None:
    path = tmp_path / "hs.csv"
    path.write_text("hscode,description\n84,Machinery\n8456,Machine-tools\n845611,Laser\n", encoding="utf-8")
    with_hs = Known(nomenclature=load_nomenclature(path))
    assert check_matchers({"hs": "845611"}, with_hs) == {"hs": "845611"}
    assert "8457 is not in the HS nomenclature" in refused({"hs": "8457"}, with_hs)
    assert check_matchers({"hs": "8457"}, Known()) == {"hs": "8457"}


def test_an_unknown_key_names_the_nearest() -> None:
    with pytest.raises(
        ValueError, match=r"'crosing' cannot be matched; use one of: .*; did you mean 'crossing'\?"
    ):
        parse_matchers(["crosing=Dandong"])


def test_the_live_rule_set_is_published_with_its_rule_ids_and_tags() -> None:
    ruleset = load_ruleset(
        [ROOT / "config/rules.yaml"], ROOT / "config/catalog.yaml", ROOT / "config/rates.yaml"
    )
    published = json.loads(live.document(ruleset))
    assert published["version"] == ruleset.version
    assert "shipyard" in published["rules"]["shipyard-equipment"]
    assert set(published["rules"]) == {c.rule.id for c in ruleset.rules}
