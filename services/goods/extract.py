"""Goods found in free text: items, markers, prices, crossings and countries, with the words quoted.

One implementation for every stage: ingest reads a news article or a field note with it, and the
rules stage reads with it the text of a report that names no items (an outside producer's
``XADD``, a JSON Lines row, an HTTP post with only ``text``). Pure: no I/O, no clock.

What is found, with the catalog (``Catalog.mentions``) and the rates table:

- the machines and goods named, each with the words that named it, the first sentence that named
  it (``quote``) and where in that sentence its words and the markers that qualify it are
  (``marks``), so an alert can quote the text with the words marked;
- crossings (Dandong-Sinuiju, Hunchun-Rason/Wonjong-ri, Changbai-Hyesan; English, Chinese, Korean)
  and, from them or from words (China, 朝鲜, 북한...), the origin and destination countries;
- prices and currencies (``10,000 and 50,000 yuan``, ``$690``, ``1万至5万元``, ``5만 위안``), converted
  into the rates table's base currency; an item takes the first price of its paragraph;
- markers: second-hand, new, disassembled, technicians sent to install, shipyards, exemptions.

A condition marker (second-hand, new, disassembled) qualifies the goods it is said of, not every
good of its paragraph:

- before a good, inside its noun phrase ("used lathes", "second-hand 20-ton excavators", 二手数控车床,
  중고 용접기), it qualifies that good, and the list it heads when the list goes on with goods of
  the same kind ("used plate bending machines, welding machines and a CNC plasma cutter": all three;
  "Used fishing boats and walkie-talkies": the boats only);
- after goods ("lathes, shipped in parts", 数控车床和注塑机拆解后), it qualifies the list right before
  it; a sentence that says it of goods it does not name ("Most of this equipment is secondhand",
  "The machines were dismantled") speaks of the goods of the sentence before it in the paragraph
  (the list it follows), and one with no such sentence concerns the whole report.

``shipyard`` holds for the list of goods right beside it; an exemption for every good of its
paragraph; technicians, and every marker, are listed in a summary line that heads an article's
report text (``[tradewatch extraction] ...``), which the rules stage reads and this extractor skips.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas.report import MAX_ITEMS, MAX_TEXT_CHARS, ImportReport
from services.goods.catalog import Catalog
from services.money import Price, Rates, find_prices
from services.textmatch import TermMatcher, aligned

ORIGIN_WORDS = ["China", "Chinese", "中国", "中方", "중국"]
DESTINATION_WORDS = ["North Korea", "North Korean", "DPRK", "Pyongyang", "朝鲜", "북한", "평양"]

SUMMARY_PREFIX = "[tradewatch extraction]"
"""Heads the summary line an article's report text starts with; never read as text of its own."""

MARKER_TITLES = {
    "used": "second-hand",
    "new": "new",
    "disassembled": "disassembled or shipped in parts",
    "technicians": "technicians sent to install",
    "shipyard": "shipyard",
    "exemption": "exemption named",
}

CONDITION_MARKERS = frozenset({"used", "new", "disassembled"})
"""Markers that qualify the goods they are said of (see the module's docstring)."""

PARAGRAPH_MARKERS = frozenset({"exemption"})
"""Markers that hold for every item of their paragraph."""

LIST_MARKERS = frozenset({"shipyard"})
"""Markers that hold for the items listed right beside them."""

DESCRIPTION_MAX_CHARS = 2_000
"""The longest description a report item takes (``schemas.report.ReportItem``)."""

QUOTE_MAX_CHARS = 400
"""A sentence longer than this is quoted around the words that named the good."""


_GAP_WORDS = frozenset(
    [
        ",", ";", ":", "(", ")", "、", "and", "or", "including", "include", "includes", "such",
        "as", "well", "like", "e.g.", "for", "a", "an", "the", "at", "in", "of", "to", "use", "its",
        "their", "和", "及", "与", "以及", "等", "用", "的", "用的", "包括", "및", "와", "과", "의",
        "용", "등",
    ]
)  # fmt: skip
_GAP_TOKEN = re.compile(r"[^\W\d_]+\.?[^\W\d_]*\.?|[^\w\s]")

# What cannot be inside one noun phrase: a list separator, punctuation that ends a phrase, or a
# word that links clauses. A marker before a good with only other words between (a make, a size,
# a model) modifies it: "used 20-ton Komatsu excavators", 二手小松挖掘机.
_NOT_IN_PHRASE = re.compile(
    r"[,;:()\[\]、，；：（）。.!?！？]|\b(?:and|or|but|with|for|from|to|in|at|of|by|as|than|while|"
    r"is|are|was|were|be|been|has|have|had|including|such)\b|[和及与或]|및"
)
_PHRASE_WORDS_MAX = 4
_PHRASE_CJK_MAX = 8

# Where a sentence ends: . ! ? (and runs of them, closing quotes or brackets) before a space, or
# a CJK full stop. Not after a short abbreviation ("e.g.", "No.", "approx.", "Co.").
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|[。！？]+[\"'”’）」』]*")
_ABBREVIATIONS = frozenset(
    ["e.g", "i.e", "no", "nos", "approx", "mr", "ms", "mrs", "dr", "st", "co", "ltd", "inc", "vs",
     "fig", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"]
)  # fmt: skip


def _gap_ok(gap: str) -> bool:
    return all(token in _GAP_WORDS for token in _GAP_TOKEN.findall(gap))


def _in_phrase(gap: str) -> bool:
    """Whether ``gap`` (text between a marker and a good) can sit inside one noun phrase."""
    if _NOT_IN_PHRASE.search(gap):
        return False
    latin = len(re.findall(r"[^\W_]+", re.sub(r"[^\x00-\u2fff]", " ", gap)))
    cjk = len(re.sub(r"[\x00-\u2fff\s]", "", gap))
    return latin <= _PHRASE_WORDS_MAX and cjk <= _PHRASE_CJK_MAX


_VERB_BEFORE = re.compile(
    r"(?:\b(?:is|are|was|were|be|been|being|typically|commonly|widely|mainly|mostly|often|also|now)\s)$"
)
_VERB_AFTER = re.compile(r"^\s(?:in|for|to|by|as|at|on|with)\b")


def _verb_used(norm: str, start: int, end: int) -> bool:
    """``used`` the verb ("typically used in shipyards"), not the condition ("used lathes")."""
    return bool(
        _VERB_BEFORE.search(norm[max(0, start - 12) : start]) or _VERB_AFTER.match(norm[end : end + 6])
    )


def sentences(paragraph: str) -> list[tuple[int, int]]:
    """The spans of the sentences of a paragraph, in order, covering it."""
    spans = []
    start = 0
    for end in _SENTENCE_END.finditer(paragraph):
        word = re.search(r"([^\W\d_][\w.]*)\.$", paragraph[max(start, end.start() - 16) : end.start() + 1])
        if end.group().startswith(".") and word and word.group(1).casefold() in _ABBREVIATIONS:
            continue
        if end.group().startswith(".") and re.fullmatch(
            r"(?:[A-Za-z]\.)+", paragraph[max(start, end.start() - 3) : end.end()]
        ):
            continue  # an initialism: U.S., D.P.R.K.
        spans.append((start, end.end()))
        start = end.end()
    if start < len(paragraph):
        spans.append((start, len(paragraph)))
    return [(s, e) for s, e in spans if paragraph[s:e].strip()]


@dataclass
class FoundItem:
    id: str
    hs: str
    words: list[str] = field(default_factory=list)
    paragraphs: set[int] = field(default_factory=set)
    markers: dict[str, list[str]] = field(default_factory=dict)
    price: Price | None = None
    quote: str | None = None
    """The first sentence that named the good, as written (clipped around it when long)."""
    marks: list[tuple[int, int]] = field(default_factory=list)
    """Spans in ``quote`` of the words that named the good and of the markers that qualify it."""


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
        return f"{SUMMARY_PREFIX} " + " | ".join(parts) if parts else ""


@dataclass
class _Named:
    """A good named in a sentence: which, where (in the paragraph's normalised text), and whether
    its catalog item only names a kind of goods."""

    item: FoundItem
    start: int
    end: int
    generic: bool


@dataclass
class _Sentence:
    start: int  # in the paragraph as written
    end: int
    named: list[_Named] = field(default_factory=list)
    markers: list[tuple[str, str, int, int]] = field(default_factory=list)  # name, words, norm span
    bound: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # item id -> marker spans

    @property
    def specific(self) -> list[_Named]:
        return [n for n in self.named if not n.generic]


class Extractor:
    """Catalog and rates in, ``extract(text) -> Extraction`` out."""

    def __init__(self, catalog: Catalog, rates: Rates | None = None) -> None:
        self.catalog = catalog
        self.rates = rates
        self._origin: TermMatcher[str] = TermMatcher((w, "CN") for w in ORIGIN_WORDS)
        self._destination: TermMatcher[str] = TermMatcher((w, "KP") for w in DESTINATION_WORDS)
        self._kinds = {i: frozenset(catalog.item_categories(i)) for i in catalog.items}

    def extract(self, text: str) -> Extraction:
        out = Extraction()
        crossings: dict[str, None] = {}
        paragraphs = (p for p in text.splitlines() if p.strip() and not p.startswith(SUMMARY_PREFIX))
        for index, paragraph in enumerate(paragraphs):
            self._paragraph(out, index, paragraph)
            for name in self.catalog.crossings_in(paragraph):  # the catalog's crossing names
                crossings[name] = None
        # "The machines were dismantled": a generic word stands for the goods named around it.
        specific = {k: v for k, v in out.items.items() if not self.catalog.items[k].generic}
        if specific:
            out.items = specific
        out.crossings = list(crossings)
        if out.crossings:  # every crossing watched here runs from China into the DPRK
            out.origin_country = out.origin_country or "CN"
            out.destination_country = out.destination_country or "KP"
        return out

    def _paragraph(self, out: Extraction, index: int, paragraph: str) -> None:
        """Read one paragraph into ``out``: its goods, markers, prices and countries."""
        norm, origin = aligned(paragraph)
        said = [_Sentence(s, e) for s, e in sentences(paragraph)]
        here: list[tuple[FoundItem, int, int]] = []
        for mention in self.catalog.mentions(norm):
            words = paragraph[origin[mention.start] : origin[mention.end - 1] + 1].strip()
            sentence = _sentence_at(said, origin[mention.start])
            if mention.kind == "marker":
                if mention.key not in MARKER_TITLES:
                    continue  # a word for parts: it says which code a description takes, no more
                if words.casefold() == "used" and _verb_used(norm, mention.start, mention.end):
                    continue
                sentence.markers.append((mention.key, words, mention.start, mention.end))
                continue
            item = out.items.get(mention.key)
            if item is None:
                item = out.items[mention.key] = FoundItem(mention.key, self.catalog.items[mention.key].hs)
            _add(item.words, words)
            item.paragraphs.add(index)
            generic = self.catalog.items[mention.key].generic
            sentence.named.append(_Named(item, mention.start, mention.end, generic))
            here.append((item, mention.start, mention.end))
        prices = find_prices(paragraph, self.rates)
        out.prices += prices
        if out.origin_country is None and self._origin.find(norm):
            out.origin_country = "CN"
        if out.destination_country is None and self._destination.find(norm):
            out.destination_country = "KP"
        for number, sentence in enumerate(said):
            for name, words, start, end in sentence.markers:
                _add(out.markers.setdefault(name, []), words)
                if name in CONDITION_MARKERS:
                    bound = self._qualified(norm, said, number, start, end)
                elif name in PARAGRAPH_MARKERS:
                    bound = [item for item, _, _ in here]
                elif name in LIST_MARKERS:
                    bound = _beside(norm, start, end, here)
                else:
                    bound = []
                for item in bound:
                    _add(item.markers.setdefault(name, []), words)
                    sentence.bound.setdefault(item.id, []).append((start, end))
        for item, _, _ in here:
            if item.price is None and prices:
                item.price = prices[0]
        for sentence in said:
            self._quote(paragraph, origin, sentence)

    def _qualified(
        self, norm: str, said: list[_Sentence], number: int, start: int, end: int
    ) -> list[FoundItem]:
        """The goods a condition marker at ``norm[start:end]`` in sentence ``number`` is said of."""
        sentence = said[number]
        named = sentence.named
        after = [n for n in named if n.start >= end]
        before = [n for n in named if n.end <= start]
        listed: list[_Named] = []
        if after and _in_phrase(norm[end : after[0].start]):
            # Before a good, in its noun phrase: that good, and the list it heads while the list
            # goes on with goods of the same kind.
            head = after[0]
            listed = [head]
            if not head.generic:
                kind = self._kinds[head.item.id]
                for n in _run(norm, after, forward=True)[1:]:
                    if n.generic or not kind & self._kinds[n.item.id]:
                        break
                    listed.append(n)
        elif before:
            listed = _run(norm, before[::-1], forward=False)  # the list right before it
        elif after:
            listed = _run(norm, after, forward=True)  # "Shipped in parts: lathes and presses"
        if listed and all(n.generic for n in listed):
            # "used machinery such as lathes and presses": the goods listed beside the kind.
            beside = {id(n) for n in listed}
            others = [n for n in sentence.specific if id(n) not in beside]
            edge = [(n.item, n.start, n.end) for n in others]
            first, last = listed[0], listed[-1]
            near = _beside(norm, min(first.start, last.start), max(first.end, last.end), edge)
            if near:
                return near
            listed = []
        if listed:
            return _unique(n.item for n in listed if not n.generic)
        # Said of goods the sentence does not name: those of the sentence before it that does.
        for earlier in reversed(said[:number]):
            if earlier.specific:
                return _unique(n.item for n in earlier.specific)
        return []

    def _quote(self, paragraph: str, origin: list[int], sentence: _Sentence) -> None:
        """The sentence quoted for each good it is the first to name, with the words marked."""
        for first in sentence.named:
            item = first.item
            if item.quote is not None or first.generic:
                continue
            spans = [(n.start, n.end) for n in sentence.named if n.item is item]
            spans += sentence.bound.get(item.id, [])
            raw = paragraph[sentence.start : sentence.end]
            lead = len(raw) - len(raw.lstrip())
            offset = sentence.start + lead
            marks = sorted({(origin[s] - offset, origin[e - 1] + 1 - offset) for s, e in spans})
            item.quote, item.marks = _clip(raw.strip(), marks, QUOTE_MAX_CHARS)

    def item(self, item: FoundItem) -> dict[str, Any]:
        """A found good as a report item: its words, what qualifies it, its price as written."""
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
        if len(entry["description"]) > DESCRIPTION_MAX_CHARS:  # a good named in very many ways
            entry["description"] = entry["description"][: DESCRIPTION_MAX_CHARS - 1] + "…"
        return entry

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
        items = [self.item(item) for item in found.items.values()]
        summary = found.summary()
        full = f"{summary}\n\n{body}" if summary else body
        document: dict[str, Any] = {
            "report_id": report_id,
            "source": source,
            "origin_country": found.origin_country,
            "destination_country": found.destination_country,
            "crossing": "; ".join(found.crossings) or None,
            "items": items[:MAX_ITEMS],
            "text": full[:MAX_TEXT_CHARS],
            "url": url,
            "reported_at": reported_at,
        }
        return ImportReport.model_validate({k: v for k, v in document.items() if v is not None})


def _sentence_at(said: list[_Sentence], at: int) -> _Sentence:
    """The sentence holding the character at ``at`` of its paragraph."""
    return next((s for s in said if s.start <= at < s.end), said[-1])


def _run(norm: str, named: list[_Named], *, forward: bool) -> list[_Named]:
    """The first of ``named`` (in the order given) and those listed on from it without a break."""
    if not named:
        return []
    out = [named[0]]
    for n in named[1:]:
        prev = out[-1]
        gap = norm[prev.end : n.start] if forward else norm[n.end : prev.start]
        if not _gap_ok(gap):
            break
        out.append(n)
    return out


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


def _clip(text: str, marks: list[tuple[int, int]], limit: int) -> tuple[str, list[tuple[int, int]]]:
    """``text`` and ``marks`` cut to about ``limit`` characters around the first mark."""
    if len(text) <= limit:
        return text, marks
    first = marks[0][0] if marks else 0
    start = max(0, min(first - limit // 3, len(text) - limit))
    while 0 < start < first and not text[start - 1].isspace():
        start += 1  # begin at a word
    end = min(len(text), start + limit)
    head = "…" if start > 0 else ""
    tail = "…" if end < len(text) else ""
    shift = len(head) - start
    kept = [(s + shift, e + shift) for s, e in marks if s >= start and e <= end]
    return head + text[start:end] + tail, kept


def _unique(items: Iterable[FoundItem]) -> list[FoundItem]:
    return list({item.id: item for item in items}.values())


def _add(words: list[str], word: str) -> None:
    if word not in words:
        words.append(word)
