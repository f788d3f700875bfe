"""The catalog classifies items in English, Chinese and Korean, and says how."""

from __future__ import annotations

import pytest

from schemas.report import Condition
from services.rules.catalog import Catalog, load_catalog, parse_catalog
from services.yamlfile import ConfigError, parse
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(ROOT / "config/catalog.yaml")


@pytest.mark.parametrize(
    ("description", "code", "category"),
    [
        ("CNC cutting machine", "8456", "machine-tools"),
        ("Excavators, crawler type", "842952", "construction-machinery"),
        ("数控切割机", "8456", "machine-tools"),
        ("拖拉机 20台", "8701", "agricultural-machinery"),
        ("트랙터를 수입", "8701", "agricultural-machinery"),
        ("초음파 진단기", "901812", "medical-devices"),
        ("radio transceivers", "852560", "radio-telecom"),
        ("X-Ray machines", "902214", "medical-devices"),
        ("injection molding machine", "847710", "industrial-machinery"),
    ],
)
def test_words_give_the_most_specific_code(
    catalog: Catalog, description: str, code: str, category: str
) -> None:
    result = catalog.classify(description, None)
    assert result.hs_code == code
    assert result.hs_source == "catalog"
    assert category in result.categories
    assert any("in description" in e for e in result.evidence)


def test_longest_term_wins_and_evidence_names_it(catalog: Catalog) -> None:
    result = catalog.classify("second-hand CNC cutting machines", None)
    assert result.item_ids[0] == "cnc-cutting-machine"
    assert "dual-use" in result.categories
    assert result.condition is Condition.USED


def test_declared_code_is_kept_and_gains_prefix_categories(catalog: Catalog) -> None:
    result = catalog.classify("tractors", "870192")
    assert result.hs_code == "870192"
    assert result.hs_source == "declared"
    assert {"vehicles", "agricultural-machinery"} <= result.categories


def test_markers_in_three_languages(catalog: Catalog) -> None:
    assert catalog.classify("二手 焊机", None).condition is Condition.USED
    assert catalog.classify("중고 용접기", None).condition is Condition.USED
    assert catalog.classify("lathe, shipped in parts", None).disassembled
    assert catalog.classify("折弯机 散件", None).disassembled
    assert "shipyard-equipment" in catalog.classify("welding machines for a shipyard", None).categories


def test_word_boundaries_hold_for_latin_script(catalog: Catalog) -> None:
    assert catalog.classify("lathered soap", None).hs_code is None
    assert catalog.classify("pressure", None).hs_code is None
    assert catalog.classify("lathes", None).hs_code == "8458"


def test_everyday_goods_are_not_machinery(catalog: Catalog) -> None:
    for description in ("rice", "wheat flour", "面粉", "밀가루", "clothing"):
        result = catalog.classify(description, None)
        assert not result.categories & {"industrial-machinery", "machine-tools", "radio-telecom"}, description


def test_catalog_errors_name_file_and_line() -> None:
    text = """version: 1
categories: {machine-tools: Machine tools}
hs: {"84": [machine-tool]}
items:
  - id: lathe
    hs: "8458"
    en: [lathe]
  - id: turner
    hs: "8458"
    en: [Lathe]
"""
    with pytest.raises(ConfigError) as caught:
        parse_catalog(parse(text, "catalog.yaml"))
    message = str(caught.value)
    assert "catalog.yaml:3: unknown category 'machine-tool'" in message
    assert "catalog.yaml:10: term 'Lathe' of 'turner' already names 'lathe' (line 7)" in message
