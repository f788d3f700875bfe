"""The catalog classifies items in English, Chinese and Korean, and says how."""

from __future__ import annotations

import pytest

from schemas.report import Condition
from services.goods.catalog import Catalog, parse_catalog
from services.yamlfile import ConfigError, parse


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
    assert catalog.classify("lathered soap", None).item_ids == ("soap",)  # no lathe in "lathered"
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


# Every item of the news report's table (Daily NK, March 2026), with the code the words support.
NEWS_ITEMS = [
    ("tractors", "8701", "agricultural-machinery"),
    ("seeders", "8432", "agricultural-machinery"),
    ("harvesters", "8433", "agricultural-machinery"),
    ("combine harvesters", "843351", "agricultural-machinery"),
    ("rice mills", "843780", "agricultural-machinery"),
    ("milking machines", "843410", "agricultural-machinery"),
    ("grain dryers", "841934", "agricultural-machinery"),
    ("excavators", "842952", "construction-machinery"),
    ("bulldozers", "8429", "construction-machinery"),
    ("concrete mixers", "847431", "construction-machinery"),
    ("concrete mixer trucks", "870540", "construction-machinery"),
    ("presses", "8462", "machine-tools"),
    ("hydraulic presses", "846261", "machine-tools"),
    ("cutting machines", "84", "machine-tools"),
    ("lathes", "8458", "machine-tools"),
    ("grinders", "8460", "machine-tools"),
    ("injection molding machines", "847710", "industrial-machinery"),
    ("extruders", "847720", "industrial-machinery"),
    ("bending machines", "8462", "machine-tools"),
    ("welding machines", "8515", "machine-tools"),
    ("painting machines", "842489", "industrial-machinery"),
    ("CNC cutting machines", "8456", "dual-use"),
    ("X-ray machines", "902214", "medical-devices"),
    ("ultrasound diagnostic equipment", "901812", "medical-devices"),
    ("telecommunications relay devices", "851762", "radio-telecom"),
    ("radio transceivers", "852560", "radio-telecom"),
]


@pytest.mark.parametrize(("description", "code", "category"), NEWS_ITEMS)
def test_every_item_of_the_news_report(catalog: Catalog, description: str, code: str, category: str) -> None:
    result = catalog.classify(description, None)
    assert (result.hs_code, category in result.categories) == (code, True)


@pytest.mark.parametrize(
    ("written", "item"),
    [
        ("injection moulding machine", "injection-moulding-machine"),
        ("Injection-Molding Machines", "injection-moulding-machine"),
        ("grain driers", "grain-dryer"),
        ("mobile Xray machine", "x-ray-machine"),
        ("XRAY MACHINES", "x-ray-machine"),
        ("waterjet cutters", "waterjet-cutter"),
        ("aluminum ingots", "aluminium-ingot"),
        ("vertical machining centres", "machining-center"),
        ("spare parts for tractors", "tractor-parts"),
        ("곡물건조기", "grain-dryer"),
        ("곡물 건조기", "grain-dryer"),
        ("CNC선반", "cnc-lathe"),
        ("초음파진단기를", "ultrasound"),
        ("数控 车床", "cnc-lathe"),
    ],
)
def test_spelling_spacing_and_plural_variants(catalog: Catalog, written: str, item: str) -> None:
    assert catalog.classify(written, None).item_ids[:1] == (item,)


def test_a_description_that_lists_goods_names_each(catalog: Catalog) -> None:
    mixed = catalog.classify("rice, flour and 2 tractors", None)
    assert mixed.hs_code == "8701"  # the good that is not everyday decides the code
    assert "agricultural-machinery" in mixed.categories
    assert "food" not in mixed.categories  # everyday goods beside a notable one add nothing
    assert any("also lists" in e for e in mixed.evidence)
    both = catalog.classify("拖拉机和对讲机", None)
    assert both.hs_code == "8701"  # the first listed good decides
    assert {"agricultural-machinery", "radio-telecom"} <= both.categories
    assert catalog.classify("rice and flour", None).hs_code == "1006"


def test_the_good_comes_before_what_it_is_for(catalog: Catalog) -> None:
    assert catalog.classify("marine radar for fishing boats", None).hs_code == "852610"
    assert catalog.classify("band saw machines", None).hs_code == "846150"  # not the generic "machine"
    assert catalog.classify("steel shelving", None).hs_code == "9403"  # the head noun comes last
    assert catalog.classify("金属货架", None).hs_code == "9403"


def test_markers_and_goods_do_not_hide_each_other(catalog: Catalog) -> None:
    used_truck = catalog.classify("二手货车 5辆", None)
    assert (used_truck.hs_code, used_truck.condition) == ("8704", Condition.USED)
    yard = catalog.classify("shot blasting machine, ship repair yard", None)
    assert "shipyard-equipment" in yard.categories
    assert "vessels" not in yard.categories  # "ship" is part of the marker phrase


def test_ignored_phrases_shadow_shorter_terms(catalog: Catalog) -> None:
    assert catalog.classify("machines used for farming", None).condition is Condition.UNKNOWN
    assert catalog.classify("홍콩", None).item_ids == ()  # not 콩, soybeans
    assert catalog.classify("press release", None).item_ids == ()
    assert catalog.mentions("press release") == []


def test_short_terms_in_other_words_do_not_match(catalog: Catalog) -> None:
    assert catalog.classify("100 pcs", None).item_ids == ()  # no "PC" plural
    assert catalog.classify("약 100대", None).item_ids == ()  # 약 "about", not medicine
    assert catalog.classify("조선민주주의인민공화국", None).categories == frozenset()  # not a shipyard
    assert catalog.classify("toy tractors", None).categories == frozenset({"consumer-goods"})


def test_mentions_give_term_language_and_span_in_the_original_text(catalog: Catalog) -> None:
    text = "Ｃｈｉｎｅｓｅ  X-Ray 機器? No: 중고 곡물 건조기 and 二手数控切割机, shipped in parts."
    found = catalog.mentions(text)
    seen = {(m.kind, m.key, m.lang, text[m.start : m.end]) for m in found}
    assert ("marker", "used", "ko", "중고") in seen
    assert ("item", "grain-dryer", "ko", "곡물 건조기") in seen
    assert ("marker", "used", "zh", "二手") in seen
    assert ("item", "cnc-cutting-machine", "zh", "数控切割机") in seen
    assert ("marker", "disassembled", "en", "shipped in parts") in seen
    assert all(m.term for m in found)
    assert [m.start for m in found] == sorted(m.start for m in found)


def test_catalog_refuses_a_variant_that_two_items_claim() -> None:
    text = """version: 1
categories: {machine-tools: Machine tools}
hs: {}
items:
  - id: a
    hs: "8477"
    en: [moulding machine]
  - id: b
    hs: "8477"
    en: [molding machine]
"""
    with pytest.raises(ConfigError) as caught:
        parse_catalog(parse(text, "catalog.yaml"))
    assert "catalog.yaml:10: term 'molding machine' of 'b' already names 'a' (line 7)" in str(caught.value)


@pytest.mark.parametrize(
    ("description", "code"),
    [
        ("spare parts for combine harvesters", "843390"),  # a word for parts: the good's parts
        ("lathe spare parts (tool posts)", "8466"),  # parts of machine tools have a heading
        ("缝纫机配件 1000套", "845290"),
        ("파종기 부품 50세트", "843290"),
        ("트랙터 클러치 부품", "8708"),
        ("excavator spare parts (buckets, teeth)", "843149"),  # already parts: unchanged
        ("tractor with spare parts kit", "8701"),  # what it comes with is not what it is
        ("gear-type hydraulic pump for truck crane", "8413"),  # a heading of its own wins
        ("leaf springs, 200 sets", "7320"),
        ("oil filters for excavators", "842123"),
        ("무전기 배터리 200개", "8507"),
    ],
)
def test_parts_and_components(catalog: Catalog, description: str, code: str) -> None:
    assert catalog.classify(description, None).hs_code == code


def test_parts_take_the_categories_of_their_heading(catalog: Catalog) -> None:
    parts = catalog.classify("트랙터 클러치 부품", None)
    assert parts.categories == frozenset({"vehicles"})
    assert any("names parts of tractor" in e for e in parts.evidence)


@pytest.mark.parametrize(
    ("description", "code"),
    [
        ("aluminium foil 0.01mm jumbo rolls", "7607"),
        ("door locks and padlocks", "8301"),
        ("furniture hinges", "8302"),
        ("masonry drill bits", "8207"),
        ("circular saw blades 250mm", "8202"),
        ("roofing nails, galvanised", "7317"),
        ("razor wire (concertina)", "7313"),
        ("welding rods 4mm (E7018)", "831110"),
        ("cored welding wire 1.2mm", "831120"),
        ("pre-painted galvanised steel coils (PPGI)", "7210"),
        ("copper tubes for air conditioning", "7411"),
        ("abrasive cutting wheels 350mm", "6804"),  # abrasives are chapter 68, not a metal
    ],
)
def test_metal_articles_at_heading_level(catalog: Catalog, description: str, code: str) -> None:
    assert catalog.classify(description, None).hs_code == code


def test_two_way_radios_are_not_broadcast_receivers(catalog: Catalog) -> None:
    receiver = catalog.classify("FM radio receivers (pocket)", None)
    assert receiver.hs_code == "8527"
    assert "radio-telecom" not in receiver.categories
    assert catalog.classify("차량용 라디오", None).hs_code == "852721"
    transceiver = catalog.classify("UHF handheld transceivers", None)
    assert (transceiver.hs_code, "radio-telecom" in transceiver.categories) == ("852560", True)


def test_a_notable_word_qualifying_an_everyday_good(catalog: Catalog) -> None:
    assert catalog.classify("bulldozer toys (friction powered)", None).categories == {"consumer-goods"}
    assert catalog.classify("장난감 비행기 300개", None).hs_code == "9503"  # the toy word governs
    assert catalog.classify("dental X-ray film", None).categories == frozenset()
    assert catalog.classify("ultrasound coupling gel", None).hs_code == "300670"
    assert catalog.classify("car seat covers", None).hs_code == "6304"
    overalls = catalog.classify("coveralls for shipyard welders", None)
    assert overalls.categories == {"clothing"}  # the shipyard's workers' clothing is clothing
    welders = catalog.classify("shipyard welding machines", None)
    assert "shipyard-equipment" in welders.categories
    trailer = catalog.classify("farm trailers, tipping, for tractors", None)
    assert (trailer.hs_code, trailer.categories) == ("8716", frozenset({"vehicles"}))
