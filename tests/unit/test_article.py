"""Articles become reports: the goods they name, crossings, prices, second-hand, in parts, technicians."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.report import Condition, ImportReport
from services.goods.catalog import Catalog
from services.ingest.sources.article import ArticleSource, Extractor, find_prices, html_to_text
from services.money import Rates
from tests.helpers import ROOT, shared_file

ALL_CROSSINGS = ["Dandong-Sinuiju", "Hunchun-Rason (Wonjong-ri)", "Changbai-Hyesan"]

# The machine types the March 2026 news report names, by catalog id.
NEWS_ITEMS = {
    "tractor", "seeder", "harvester", "rice-mill", "milking-machine", "grain-dryer",
    "excavator", "bulldozer", "concrete-mixer",
    "press", "cutting-machine", "lathe", "grinder", "injection-moulding-machine", "extruder",
    "cnc-cutting-machine", "bending-machine", "welding-machine", "painting-machine",
    "x-ray-machine", "ultrasound", "telecom-relay", "radio-transceiver",
}  # fmt: skip
SHIPYARD_ITEMS = {"cnc-cutting-machine", "bending-machine", "welding-machine", "painting-machine"}
FARM_ITEMS = {"tractor", "seeder", "harvester", "rice-mill", "milking-machine", "grain-dryer"}


@pytest.fixture(scope="module")
def extractor(catalog: Catalog, rates: Rates) -> Extractor:
    return Extractor(catalog, rates)


def read(extractor: Extractor, path: Path) -> ImportReport:
    parsed = list(ArticleSource(extractor).read(path))
    assert len(parsed) == 1
    report = parsed[0]
    assert isinstance(report, ImportReport), report
    return report


def by_words(report: ImportReport, words: str) -> list[str]:
    return [i.description or "" for i in report.items if words in (i.description or "")]


def test_the_news_report_yields_its_machines_crossings_prices_and_markers(extractor: Extractor) -> None:
    text = shared_file("domain", "dailynk-2026-03-machinery-imports.txt").read_text(encoding="utf-8")
    found = extractor.extract(text)

    assert set(found.items) >= NEWS_ITEMS, NEWS_ITEMS - set(found.items)
    assert len(found.items) >= 23
    assert found.crossings == ALL_CROSSINGS
    yuan = [p for p in found.prices if p.currency == "CNY"]
    assert (yuan[0].low, yuan[0].high) == (10_000, 50_000)
    assert any(p.low == 5_000 for p in yuan)
    assert {"used", "disassembled", "technicians", "shipyard"} <= set(found.markers)
    assert "secondhand" in found.markers["used"]
    assert "technicians" in found.markers["technicians"]
    # second-hand shipyard gear: the shipyard list, and only it, is second-hand and shipyard
    for key, item in found.items.items():
        assert ("used" in item.markers) == (key in SHIPYARD_ITEMS), (key, item.markers)
        assert ("shipyard" in item.markers) == (key in SHIPYARD_ITEMS), (key, item.markers)
    for key in FARM_ITEMS:
        price = found.items[key].price
        assert price is not None
        assert (price.low, price.high, price.currency) == (10_000, 50_000, "CNY")

    report = extractor.report(text, "article", "article-news")
    assert report.origin_country == "CN"
    assert report.destination_country == "KP"
    assert report.crossing == "; ".join(ALL_CROSSINGS)
    assert report.text is not None
    assert "disassembled" in report.text.split("\n")[0]  # in the summary the rules stage reads
    cnc = next(i for i in report.items if (i.description or "").startswith("CNC cutting machines"))
    assert cnc.condition is Condition.USED
    assert "shipyards" in (cnc.description or "")
    tractors = next(i for i in report.items if (i.description or "").startswith("Tractors"))
    assert tractors.currency == "USD"  # normalised through the rates table (10,000 CNY x 0.138)
    assert tractors.unit_price == pytest.approx(1_380)
    assert "10,000-50,000 CNY" in (tractors.description or "")


SAMPLES = {
    "article-hunchun-shipyard.txt": {
        "items": {"bending-machine", "welding-machine", "cnc-plasma-cutter", "excavator", "truck"},
        "used": {"plate bending machines", "welding machines", "CNC plasma cutter"},
        "disassembled": {"plate bending machines", "welding machines", "CNC plasma cutter"},
        "crossings": ["Hunchun-Rason (Wonjong-ri)"],
        "price": (80_000, 120_000, "CNY"),
        "markers": {"used", "disassembled", "technicians", "shipyard"},
    },
    "article-dandong-farm-zh.txt": {
        "items": {"tractor", "seeder", "harvester", "cnc-lathe", "injection-moulding-machine"},
        "used": {"数控车床", "注塑机"},
        "disassembled": {"数控车床", "注塑机"},
        "crossings": ["Dandong-Sinuiju"],
        "price": (10_000, 50_000, "CNY"),
        "markers": {"used", "disassembled", "technicians"},
    },
    "article-hyesan-medical-ko.html": {
        "items": {"ultrasound", "x-ray-machine", "radio-transceiver", "telecom-relay"},
        "used": set(),
        "disassembled": set(),
        "crossings": ["Changbai-Hyesan"],
        "price": (3_000, 3_000, "CNY"),
        "markers": set(),
    },
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_project_sample_articles(extractor: Extractor, name: str) -> None:
    want = SAMPLES[name]
    path = ROOT / "config/samples" / name
    report = read(extractor, path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".html":
        text = html_to_text(text)[1]
    found = extractor.extract(text)

    assert want["items"] <= set(found.items)
    assert found.crossings == want["crossings"]
    assert found.prices
    assert (found.prices[0].low, found.prices[0].high, found.prices[0].currency) == want["price"]
    assert set(found.markers) >= want["markers"]
    used = {(i.description or "").split(" (")[0] for i in report.items if i.condition is Condition.USED}
    assert used == want["used"]
    parts = {(i.description or "").split(" (")[0] for i in report.items if i.disassembled}
    assert parts == want["disassembled"]
    assert report.destination_country == "KP"
    assert report.origin_country == "CN"
    # the same article read again is the same report
    assert read(extractor, path).report_id == report.report_id


def test_html_keeps_the_text_and_drops_scripts_styles_and_navigation() -> None:
    title, text = html_to_text(
        "<html><head><title>T &amp; t</title><script>lathe()</script></head><body>"
        "<nav>tractors</nav><p>Excavators &amp; <b>bulldozers</b></p><p>second</p></body></html>"
    )
    assert title == "T & t"
    assert text == "Excavators & bulldozers\nsecond"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("between 10,000 and 50,000 yuan", [(10_000, 50_000, "CNY")]),
        ("(approximately $1,380 to $6,900)", [(1_380, 6_900, "USD")]),
        ("每台价格在1万至5万元之间", [(10_000, 50_000, "CNY")]),
        ("가격은 5만 위안", [(50_000, 50_000, "CNY")]),
        ("EUR prices: 2.5 million euros", [(2_500_000, 2_500_000, "EUR")]),
        ("in 2026, 40 tractors and 3 lathes", []),
    ],
)
def test_prices_with_their_currency(text: str, want: list[tuple[float, float, str]]) -> None:
    assert [(p.low, p.high, p.currency) for p in find_prices(text)] == want


@pytest.mark.parametrize(
    ("text", "second_hand"),
    [
        ("Presses used in consumer goods factories.", False),
        ("Presses typically used by shipyards.", False),
        ("Lathes that are used for repairs.", False),
        ("Used lathes from Shenyang.", True),
        ("They bought used presses.", True),
    ],
)
def test_used_as_a_verb_is_not_second_hand(extractor: Extractor, text: str, second_hand: bool) -> None:
    found = extractor.extract(text)
    assert ("used" in found.markers) is second_hand
    assert all(("used" in item.markers) is second_hand for item in found.items.values())


def marked(quote: str | None, marks: list[tuple[int, int]]) -> str:
    """The quote with each marked span in brackets."""
    text = quote or ""
    for start, end in reversed(marks):
        text = f"{text[:start]}[{text[start:end]}]{text[end:]}"
    return text


@pytest.mark.parametrize(
    "headline", ["Used fishing boats and walkie-talkies", "二手渔船和对讲机", "중고 어선과 무전기 반입"]
)
def test_a_marker_qualifies_the_goods_it_modifies_not_the_whole_headline(
    extractor: Extractor, headline: str
) -> None:
    found = extractor.extract(headline)
    assert set(found.items) == {"fishing-vessel", "radio-transceiver"}
    assert "used" in found.items["fishing-vessel"].markers
    assert "used" not in found.items["radio-transceiver"].markers
    assert "used" in found.markers  # still listed for the whole report


def test_a_marker_heads_a_list_of_goods_of_one_kind(extractor: Extractor) -> None:
    found = extractor.extract(
        "They bought used plate bending machines, welding machines and a CNC plasma cutter."
    )
    assert all("used" in item.markers for item in found.items.values()), found.items
    found = extractor.extract("brand new tractors, seeders and harvesters; lathes arrived later")
    assert {k for k, i in found.items.items() if "new" in i.markers} == {"tractor", "seeder", "harvester"}


def test_a_marker_after_goods_qualifies_the_list_it_follows(extractor: Extractor) -> None:
    found = extractor.extract("Lathes arrived assembled, while the presses were shipped in parts.")
    assert "disassembled" in found.items["press"].markers
    assert "disassembled" not in found.items["lathe"].markers
    # A sentence that names no goods speaks of those of the sentence before it.
    found = extractor.extract(
        "Tractors came through Dandong. Shipyards bought CNC cutting machines and welding machines. "
        "Most of this equipment is secondhand."
    )
    assert {k for k, i in found.items.items() if "used" in i.markers} == {
        "cnc-cutting-machine",
        "welding-machine",
    }
    # "The machines": a word for a kind of goods stands for the goods of the sentence before.
    found = extractor.extract("Excavators and lathes were bought in Jilin. The machines were dismantled.")
    assert all("disassembled" in i.markers for i in found.items.values())
    # Nothing named before in the paragraph: the marker concerns the report only.
    found = extractor.extract("Many of the machines are shipped in parts.\nLathes came from Shenyang.")
    assert "disassembled" in found.markers
    assert "disassembled" not in found.items["lathe"].markers


def test_each_good_keeps_the_sentence_that_named_it_with_its_words_marked(extractor: Extractor) -> None:
    found = extractor.extract(
        "Border trade picked up in March. Traders said used lathes and 二手数控车床 went through Dandong, "
        "e.g. to Sinuiju. Lathes were also seen at Hyesan."
    )
    lathe = found.items["lathe"]
    assert marked(lathe.quote, lathe.marks) == (
        "Traders said [used] [lathes] and 二手数控车床 went through Dandong, e.g. to Sinuiju."
    )
    cnc = found.items["cnc-lathe"]
    assert (
        marked(cnc.quote, cnc.marks)
        == "Traders said used lathes and [二手][数控车床] went through Dandong, e.g. to Sinuiju."
    )
    headline = extractor.extract("Used fishing boats and walkie-talkies").items
    assert headline["fishing-vessel"].marks == [(0, 4), (5, 18)]
    assert marked(headline["radio-transceiver"].quote, headline["radio-transceiver"].marks) == (
        "Used fishing boats and [walkie-talkies]"
    )


def test_a_long_sentence_is_quoted_around_the_good(extractor: Extractor) -> None:
    sentence = "Traders " + "talked at length about the border, " * 30 + "and a lathe went through Dandong"
    lathe = extractor.extract(sentence).items["lathe"]
    assert lathe.quote is not None
    assert len(lathe.quote) <= 402
    assert lathe.quote.startswith("…")
    assert [lathe.quote[s:e] for s, e in lathe.marks] == ["lathe"]
