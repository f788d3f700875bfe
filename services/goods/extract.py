"""Goods found in free text: items, markers, prices, crossings and countries.

One implementation for every stage that reads text (ingest's articles and feeds today), below
the stages so that each can use it. Pure: no I/O, no clock.

- crossings (Dandong-Sinuiju, Hunchun-Rason/Wonjong-ri, Changbai-Hyesan; English, Chinese, Korean);
- prices and currencies (``10,000 and 50,000 yuan``, ``$690``, ``1万至5万元``, ``5만 위안``);
- markers: second-hand goods, disassembled shipping, technicians sent to install, shipyards.

Scope is the paragraph: an item takes the markers and the first price of its own paragraph
("Most of this equipment is secondhand" after a list of shipyard machines), so its condition and
``disassembled`` flag are set for the rules stage. Markers in a paragraph that names no item
concern the whole report: they are listed in a summary at the head of the report text, which
the rules stage reads. Prices are converted into the rates table's base currency; the amount as
written stays in the description.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from schemas.report import MAX_TEXT_CHARS, ImportReport
from services.goods.catalog import Catalog
from services.money import Price, Rates, find_prices
from services.textmatch import TermMatcher

_SEPARATOR = re.compile(r"[\s\-_/·]+")

ORIGIN_WORDS = ["China", "Chinese", "中国", "中方", "중국"]
DESTINATION_WORDS = ["North Korea", "North Korean", "DPRK", "Pyongyang", "朝鲜", "북한", "평양"]

MARKER_TITLES = {
    "used": "second-hand",
    "new": "new",
    "disassembled": "disassembled or shipped in parts",
    "technicians": "technicians sent to install",
    "shipyard": "shipyard",
    "exemption": "exemption named",
}

PARAGRAPH_MARKERS = frozenset({"used", "new", "disassembled", "exemption"})
"""Markers that hold for every item of their paragraph; the others only within their sentence."""

LIST_MARKERS = frozenset({"shipyard"})
"""Markers that hold for the items listed right beside them."""

_GAP_WORDS = frozenset(
    [
        ",",
        ";",
        ":",
        "(",
        ")",
        "、",
        "and",
        "or",
        "including",
        "include",
        "includes",
        "such",
        "as",
        "well",
        "like",
        "e.g.",
        "for",
        "a",
        "an",
        "the",
        "at",
        "in",
        "of",
        "to",
        "use",
        "its",
        "their",
        "和",
        "及",
        "与",
        "以及",
        "等",
        "用",
        "的",
        "用的",
        "包括",
        "및",
        "와",
        "과",
        "의",
        "용",
        "등",
    ]
)
_GAP_TOKEN = re.compile(r"[^\W\d_]+\.?[^\W\d_]*\.?|[^\w\s]")


def _gap_ok(gap: str) -> bool:
    return all(token in _GAP_WORDS for token in _GAP_TOKEN.findall(gap))


def _beside(norm: str, start: int, end: int, items: list[tuple[FoundItem, int, int]]) -> list[FoundItem]:
    """The items in a list that runs on from the marker, or that the marker follows."""
    bound = []
    edge = end
    for item, s, e in sorted((i for i in items if i[1] >= end), key=lambda i: i[1]):
        if not _gap_ok(norm[edge:s]):
            break
        bound.append(item)
        edge = e
    edge = start
    for item, s, e in sorted((i for i in items if i[2] <= start), key=lambda i: -i[2]):
        if not _gap_ok(norm[e:edge]):
            break
        bound.append(item)
        edge = s
    return bound


_VERB_BEFORE = re.compile(
    r"(?:\b(?:is|are|was|were|be|been|being|typically|commonly|widely|mainly|mostly|often|also|now)\s)$"
)
_VERB_AFTER = re.compile(r"^\s(?:in|for|to|by|as|at|on|with)\b")


def _verb_used(norm: str, start: int, end: int) -> bool:
    """``used`` the verb ("typically used in shipyards"), not the condition ("used lathes")."""
    return bool(
        _VERB_BEFORE.search(norm[max(0, start - 12) : start]) or _VERB_AFTER.match(norm[end : end + 6])
    )


def aligned(text: str) -> tuple[str, list[int]]:
    """``normalise(text)`` with, for each of its characters, the index it came from in ``text``."""
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = unicodedata.normalize("NFKC", char).casefold()
        if _SEPARATOR.fullmatch(folded):
            if out and out[-1] == " ":
                continue
            folded = " "
        for piece in folded:
            out.append(piece)
            origin.append(index)
    return "".join(out), origin


@dataclass
class FoundItem:
    id: str
    hs: str
    words: list[str] = field(default_factory=list)
    paragraphs: set[int] = field(default_factory=set)
    markers: dict[str, list[str]] = field(default_factory=dict)
    price: Price | None = None


@dataclass
class Extraction:
    items: dict[str, FoundItem] = field(default_factory=dict)
    crossings: list[str] = field(default_factory=list)
    prices: list[Price] = field(default_factory=list)
    markers: dict[str, list[str]] = field(default_factory=dict)
    origin_country: str | None = None
    destination_country: str | None = None

    def summary(self) -> str:
        parts = []
        if self.items:
            parts.append("items: " + ", ".join(f"{i.id} ({'; '.join(i.words)})" for i in self.items.values()))
        if self.crossings:
            parts.append("crossings: " + ", ".join(self.crossings))
        if self.prices:
            parts.append("prices: " + ", ".join(dict.fromkeys(p.stated() for p in self.prices)))
        if self.markers:
            parts.append(
                "markers: "
                + ", ".join(f"{MARKER_TITLES.get(k, k)} ({'; '.join(v)})" for k, v in self.markers.items())
            )
        return "[tradewatch extraction] " + " | ".join(parts) if parts else ""


class Extractor:
    """Catalog and rates in, ``extract(text) -> Extraction`` out."""

    def __init__(self, catalog: Catalog, rates: Rates | None = None) -> None:
        self.catalog = catalog
        self.rates = rates
        self._origin: TermMatcher[str] = TermMatcher((w, "CN") for w in ORIGIN_WORDS)
        self._destination: TermMatcher[str] = TermMatcher((w, "KP") for w in DESTINATION_WORDS)

    def extract(self, text: str) -> Extraction:
        out = Extraction()
        crossings: dict[str, None] = {}
        for index, paragraph in enumerate(p for p in text.splitlines() if p.strip()):
            norm, origin = aligned(paragraph)
            here: list[tuple[FoundItem, int, int]] = []
            markers: list[tuple[str, str, int, int]] = []
            for mention in self.catalog.mentions(norm):
                words = paragraph[origin[mention.start] : origin[mention.end - 1] + 1].strip()
                if mention.kind == "marker":
                    if words.casefold() == "used" and _verb_used(norm, mention.start, mention.end):
                        continue
                    markers.append((mention.key, words, mention.start, mention.end))
                    continue
                item = out.items.get(mention.key)
                if item is None:
                    item = out.items[mention.key] = FoundItem(mention.key, self.catalog.items[mention.key].hs)
                _add(item.words, words)
                item.paragraphs.add(index)
                here.append((item, mention.start, mention.end))
            prices = find_prices(paragraph, self.rates)
            out.prices += prices
            for name in self.catalog.crossings_in(paragraph):  # the catalog's crossing names
                crossings[name] = None
            if out.origin_country is None and self._origin.find(norm):
                out.origin_country = "CN"
            if out.destination_country is None and self._destination.find(norm):
                out.destination_country = "KP"
            for name, words, start, end in markers:
                _add(out.markers.setdefault(name, []), words)
                # Condition and shipping hold for the paragraph ("Most of this equipment is
                # secondhand" after the list); a place like "shipyard" only for the list of
                # items right beside it ("shipyards, including CNC cutting machines, ...").
                if name in PARAGRAPH_MARKERS:
                    bound = [item for item, _, _ in here]
                elif name in LIST_MARKERS:
                    bound = _beside(norm, start, end, here)
                else:
                    bound = []
                for item in bound:
                    _add(item.markers.setdefault(name, []), words)
            for item, _, _ in here:
                if item.price is None and prices:
                    item.price = prices[0]
        # "The machines were dismantled": a generic word stands for the goods named around it.
        specific = {k: v for k, v in out.items.items() if not self.catalog.items[k].generic}
        if specific:
            out.items = specific
        out.crossings = list(crossings)
        if out.crossings:  # every crossing watched here runs from China into the DPRK
            out.origin_country = out.origin_country or "CN"
            out.destination_country = out.destination_country or "KP"
        return out

    def report(
        self,
        text: str,
        source: str,
        report_id: str,
        *,
        title: str = "",
        url: str | None = None,
        reported_at: Any = None,
    ) -> ImportReport:
        """The report for an article; raises ValidationError when nothing usable is in it."""
        body = "\n".join(p for p in ([title] if title and title not in text[:500] else []) + [text] if p)
        found = self.extract(body)
        items = [self._item(item) for item in found.items.values()]
        summary = found.summary()
        full = f"{summary}\n\n{body}" if summary else body
        document: dict[str, Any] = {
            "report_id": report_id,
            "source": source,
            "origin_country": found.origin_country,
            "destination_country": found.destination_country,
            "crossing": "; ".join(found.crossings) or None,
            "items": items[:2000],
            "text": full[:MAX_TEXT_CHARS],
            "url": url,
            "reported_at": reported_at,
        }
        return ImportReport.model_validate({k: v for k, v in document.items() if v is not None})

    def _item(self, item: FoundItem) -> dict[str, Any]:
        notes = [w for name, words in item.markers.items() if name != "new" for w in words]
        description = "; ".join(item.words)
        if notes:
            description += f" ({', '.join(notes)})"
        entry: dict[str, Any] = {"description": description}
        if "used" in item.markers:
            entry["condition"] = "used"
        elif "new" in item.markers:
            entry["condition"] = "new"
        if "disassembled" in item.markers:
            entry["disassembled"] = True
        price = item.price
        if price is not None:
            entry["description"] += f" (priced {price.stated()} a unit as written)"
            if price.low_base is not None and self.rates is not None:
                entry["unit_price"], entry["currency"] = round(price.low_base, 4), self.rates.base
            elif price.currency in (self.rates.rates if self.rates else {}) or self.rates is None:
                entry["unit_price"], entry["currency"] = price.low, price.currency
        return entry


def _add(words: list[str], word: str) -> None:
    if word not in words:
        words.append(word)
