"""The item catalog: words in three languages -> HS codes and categories (config/catalog.yaml).

One catalog and one matcher serve every stage: the rules stage classifies items with it, and
ingest finds the goods a news article names with it. Pure: no I/O once loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from schemas.base import StrictModel
from schemas.report import Condition
from services.goods.hscodes import hs_display
from services.textmatch import Hit, TermMatcher, english_variants, fold, fold_key, longest_first
from services.yamlfile import ConfigError, Document, Problem, load

Lang = Literal["en", "zh", "ko"]
MarkerName = Literal["used", "new", "disassembled", "technicians", "shipyard", "exemption", "parts"]


class Terms(StrictModel):
    en: list[str] = Field(default_factory=list)
    zh: list[str] = Field(default_factory=list)
    ko: list[str] = Field(default_factory=list)

    def all(self) -> Iterable[tuple[Lang, str]]:
        for lang in ("en", "zh", "ko"):
            for term in getattr(self, lang):
                yield lang, term


class CatalogItem(Terms):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]*$")
    hs: str = Field(pattern=r"^\d{2,10}$", description="the most specific code the words support")
    categories: list[str] = Field(default_factory=list)
    generic: bool = Field(
        default=False,
        description="names a kind of goods, not a good (machinery, vehicles): in free text it "
        "stands for the goods named around it, so it becomes an item only when none is",
    )
    part: bool = Field(
        default=False,
        description="names parts of a good already (tractor parts, bucket teeth): a word for parts "
        "beside it changes nothing",
    )
    governs: bool = Field(
        default=False,
        description="says what the goods it qualifies are made as (a toy): 'toy helicopters', "
        "장난감 헬리콥터 and 'excavator toys' are toys, wherever the word stands",
    )

    @field_validator("hs", mode="before")
    @classmethod
    def _hs(cls, value: object) -> object:
        return str(value).replace(".", "") if isinstance(value, str | int) else value


class Marker(Terms):
    adds_category: str | None = None


class CatalogFile(StrictModel):
    version: Literal[1] = 1
    categories: dict[str, str] = Field(min_length=1, description="id -> title")
    everyday: list[str] = Field(
        default_factory=list,
        description="categories of goods never notable on their own: when a description names one "
        "of these and another good, the other good decides the HS code",
    )
    hs: dict[str, list[str]] = Field(description="HS prefix -> categories it implies")
    items: list[CatalogItem] = Field(min_length=1)
    markers: dict[MarkerName, Marker] = Field(default_factory=dict)
    crossings: dict[str, Terms] = Field(
        default_factory=dict, description="crossing name -> the names people write for it"
    )
    parts_headings: dict[str, str] = Field(
        default_factory=dict,
        description="HS prefix of a good -> the heading its parts go to, where that is another "
        "heading (tractors 8701 -> 8708, lathes 8458 -> 8466); other goods' parts stay in their "
        "own heading (harvesters 8433 -> 8433.90). Used when a description names a good with a "
        "word for parts (the marker 'parts': spare parts, 配件, 부품, blades)",
    )
    ignore: Terms = Field(
        default_factory=Terms,
        description="phrases that name nothing but contain a shorter term: 'used for' (not the "
        "marker 'used'), 홍콩 (not 콩, soybeans); the longer phrase wins and is dropped",
    )

    @field_validator("parts_headings", mode="before")
    @classmethod
    def _parts_headings(cls, value: object) -> object:
        if isinstance(value, dict):
            fixed = {}
            for key, heading in value.items():
                code, to = str(key).replace(".", ""), str(heading).replace(".", "")
                if not (code.isdigit() and 2 <= len(code) <= 10 and to.isdigit() and 2 <= len(to) <= 10):
                    raise ValueError(f"parts_headings {key!r}: {heading!r}: HS prefixes of 2-10 digits")
                fixed[code] = to
            return fixed
        return value

    @field_validator("hs", mode="before")
    @classmethod
    def _hs_keys(cls, value: object) -> object:
        if isinstance(value, dict):
            fixed = {}
            for key, cats in value.items():
                code = str(key).replace(".", "")
                if not code.isdigit() or not 2 <= len(code) <= 10:
                    raise ValueError(f"hs key {key!r} is not an HS prefix of 2-10 digits")
                fixed[code] = cats
            return fixed
        return value


@dataclass(frozen=True, slots=True)
class TermRef:
    kind: Literal["item", "marker", "ignore"]
    key: str
    lang: Lang
    term: str


@dataclass(frozen=True, slots=True)
class Classification:
    """What the catalog makes of one item, and how it got there."""

    hs_code: str | None
    hs_source: Literal["declared", "catalog"] | None
    categories: frozenset[str]
    condition: Condition
    disassembled: bool
    evidence: tuple[str, ...]
    item_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Mention:
    """An item or marker named in free text: what, by which words, where."""

    kind: Literal["item", "marker"]
    key: str
    term: str
    lang: Lang
    start: int
    end: int


@dataclass
class Catalog:
    file: CatalogFile
    version: str
    items: dict[str, CatalogItem] = field(default_factory=dict)
    matcher: TermMatcher[TermRef] = field(init=False)

    def __post_init__(self) -> None:
        self.items = {item.id: item for item in self.file.items}
        # Looked up for every good a description names: computed once per catalog.
        self._own_categories = {i: frozenset(self.item_categories(i)) for i in self.items}
        self._everyday = {i: self.is_everyday(i) for i in self.items}
        refs: list[tuple[str, TermRef]] = []
        for item in self.file.items:
            refs += _expand("item", item.id, item)
        for name, marker in self.file.markers.items():
            refs += _expand("marker", name, marker)
        refs += _expand("ignore", "", self.file.ignore)
        self.matcher = TermMatcher(refs, key=fold_key)
        self.crossing_matcher: TermMatcher[str] = TermMatcher(
            ((term, name) for name, terms in self.file.crossings.items() for _, term in terms.all()),
            key=fold_key,
        )

    def crossings_in(self, text: str) -> list[str]:
        """The crossings named in ``text``, by their catalog name, in the order first named."""
        return list(dict.fromkeys(hit.value for hit in self.crossing_matcher.search(text)))

    def crossing_name(self, crossing: str | None) -> str | None:
        """A report's crossing under its catalog name (``丹东`` -> ``Dandong-Sinuiju``), else as written.

        Rules, dedup and group keys and surge counts then see one crossing however it is written.
        """
        if not crossing:
            return None
        # Reports name few crossings, over and over: each spelling is looked up once (bounded).
        memo: dict[str, str] = self.__dict__.setdefault("_crossing_memo", {})
        known = memo.get(crossing)
        if known is None:
            named = self.crossings_in(crossing)
            known = named[0] if len(named) == 1 else crossing
            if len(memo) >= 10_000:
                memo.clear()
            memo[crossing] = known
        return known

    @property
    def categories(self) -> dict[str, str]:
        return self.file.categories

    def hs_categories(self, code: str) -> set[str]:
        found: set[str] = set()
        for length in range(2, len(code) + 1):
            found.update(self.file.hs.get(code[:length], ()))
        return found

    def item_categories(self, item_id: str) -> set[str]:
        """An item's own categories and those of every prefix of its HS code."""
        item = self.items[item_id]
        return set(item.categories) | self.hs_categories(item.hs)

    def is_everyday(self, item_id: str) -> bool:
        cats = self.item_categories(item_id)
        return bool(cats) and cats <= set(self.file.everyday)

    def _goods(self, description: str, hits: list[Hit[TermRef]], listing: _Listing) -> list[Hit[TermRef]]:
        """The good each listed part of a description names (hits carry original spans).

        Overlapping terms are already settled (the longest won). Among the rest of a part: a good
        outside parentheses beats one inside ("flour (wheat)"), a good named before "for" or
        "with" beats what it is for or comes with ("tractor w/ front loader", 拖拉机配旋耕机),
        then the last one wins, as the head noun comes last in all three languages ("steel
        shelving" is shelving, "maize drying machine" a machine, 金属货架 a shelf), unless it
        is only a catch-all ("machine", HS 84) after a named good that is not everyday ("band
        saw machines" are band saws).
        """
        parts: dict[int, list[tuple[tuple[bool, bool], Hit[TermRef]]]] = {}
        for hit in hits:
            part = listing.of(hit.start)
            before = description[listing.bounds[part] : hit.start]
            in_parens = before.count("(") + before.count("（") > before.count(")") + before.count("）")
            qualifier = _QUALIFIER.search(before) is not None
            parts.setdefault(part, []).append(((not in_parens, not qualifier), hit))
        goods = []
        everyday, items = self._everyday, self.items
        for part in sorted(parts):
            tier = max(rank for rank, _ in parts[part])
            ranked = [hit for rank, hit in parts[part] if rank == tier]
            governing = [h for h in ranked if items[h.value.key].governs]
            if governing:  # "excavator toys", 장난감 헬리콥터: toys, whichever word comes last
                goods.append(governing[-1])
                continue
            named = [h for h in ranked if len(items[h.value.key].hs) > 2 and not everyday[h.value.key]]
            last = ranked[-1]
            goods.append(named[-1] if named and len(items[last.value.key].hs) == 2 else last)
        return goods

    def parts_heading(self, code: str) -> str:
        """Where the parts of a good of ``code`` go: a heading of their own, or its own heading."""
        for length in range(len(code), 1, -1):
            heading = self.file.parts_headings.get(code[:length])
            if heading is not None:
                return heading
        return code[:4]

    def _parts_of(
        self, description: str, good: Hit[TermRef], words: list[Hit[TermRef]], listing: _Listing
    ) -> Hit[TermRef] | None:
        """The word for parts said of ``good``: in its listed part, not something it comes with."""
        part = listing.of(good.start)
        for word in words:
            if listing.of(word.start) != part:
                continue
            if word.start >= good.end and _COMES_WITH.search(description[good.end : word.start]):
                continue  # "tractor with spare parts kit": a tractor
            return word
        return None

    def mentions(self, text: str) -> list[Mention]:
        """Every item and marker named in ``text``, longest term first, spans in ``text`` itself."""
        return [_mention(hit) for hit in self._hits(text)]

    def _hits(self, text: str) -> list[Hit[TermRef]]:
        """Item and marker hits, spans in ``text``; ignored phrases shadow both.

        Items and markers are chosen apart, so a marker never hides a good or the other way
        round: 二手货车 is 二手 (used) and 货车 (truck), though 二手货 is a marker too.
        """
        folded = fold(text)
        found = self.matcher.find_all(folded.text)
        chosen: dict[str, list[Hit[TermRef]]] = {}
        for kind in ("item", "marker"):
            chosen[kind] = [
                hit
                for hit in longest_first(h for h in found if h.value.kind in (kind, "ignore"))
                if hit.value.kind == kind
            ]
        # An item word inside a longer marker phrase is the marker's ("ship" in "ship repair yard").
        items = [
            hit
            for hit in chosen["item"]
            if not any(
                m.start <= hit.start and hit.end <= m.end and m.end - m.start > hit.end - hit.start
                for m in chosen["marker"]
            )
        ]
        out = [Hit(*folded.span(h.start, h.end), h.term, h.value) for h in items + chosen["marker"]]
        out.sort(key=lambda h: (h.start, h.end))
        return out

    def classify(
        self,
        description: str | None,
        hs_code: str | None,
        condition: Condition = Condition.UNKNOWN,
        disassembled: bool | None = None,
    ) -> Classification:
        named = self._described(description or "")
        evidence: list[str] = []
        categories = named.categories
        code, source = hs_code, ("declared" if hs_code else None)
        if hs_code:
            cats = self._hs_categories_of(hs_code)
            categories = categories | cats
            evidence.append(
                f"HS {hs_display(hs_code)} declared" + (f" ({', '.join(sorted(cats))})" if cats else "")
            )
        elif named.hs_code is not None:
            code, source = named.hs_code, "catalog"
        if condition is Condition.UNKNOWN:
            condition = named.condition
        return Classification(
            hs_code=code,
            hs_source=source,  # type: ignore[arg-type]
            categories=categories,
            condition=condition,
            disassembled=bool(disassembled) if disassembled is not None else named.disassembled,
            evidence=(*evidence, *named.evidence) if evidence else named.evidence,
            item_ids=named.item_ids,
        )

    def _described(self, description: str) -> _Description:
        """What the words of a description say, whatever the code, condition and flags declared
        beside them: the costly part of ``classify``, remembered per description (bounded),
        since a line's words recur under other codes and conditions."""
        memo: dict[str, _Description] = self.__dict__.setdefault("_description_memo", {})
        known = memo.get(description)
        if known is None:
            known = self._describe(description)
            if len(memo) >= DESCRIPTION_MEMO_SIZE:
                memo.clear()
            memo[description] = known
        return known

    def _describe(self, description: str) -> _Description:
        evidence: list[str] = []
        categories: set[str] = set()
        item_hits: list[Hit[TermRef]] = []
        markers: dict[str, str] = {}
        part_words: list[Hit[TermRef]] = []
        if description:
            for hit in self._hits(description):
                if hit.value.kind == "item":
                    item_hits.append(hit)
                elif hit.value.key == "parts":
                    part_words.append(hit)
                elif hit.value.kind == "marker":
                    markers.setdefault(hit.value.key, hit.value.term)
        item_ids = tuple(dict.fromkeys(h.value.key for h in item_hits))
        # Within one good the most specific term decides: "painting machines for ship hulls" is a
        # painting machine, not a ship (see _goods). A description that lists goods ("tractors and
        # seeders", "大米、拖拉机") names each: the first listed decides the code, unless it is
        # everyday (food, clothing...) and a later one is not; every listed good that is not
        # everyday adds its categories ("harvesters for wheat and rice" is no food shipment).
        listing = _Listing(description, [h.start for h in item_hits])
        goods = self._goods(description, item_hits, listing)
        everyday = self._everyday
        best = max(goods, key=lambda h: (not everyday[h.value.key], -h.start), default=None)
        # "harvester spare parts", 注塑机配件, 용접기 부품: the parts of the good, in their heading.
        part_word = None
        if best is not None and part_words and not self.items[best.value.key].part:
            part_word = self._parts_of(description, best, part_words, listing)
        for hit in goods:
            if hit is best and part_word is not None:
                categories |= self._hs_categories_of(self.parts_heading(self.items[hit.value.key].hs))
            elif hit is best or not everyday[hit.value.key]:
                categories |= self._own_categories[hit.value.key]
        code = None
        if best is not None:
            item = self.items[best.value.key]
            code = item.hs
            evidence.append(
                f'"{best.value.term}" ({best.value.lang}) in description -> {item.id}, HS {item.hs}'
            )
            if part_word is not None:
                code = self.parts_heading(item.hs)
                evidence.append(f'"{part_word.value.term}" names parts of {item.id} -> HS {code}')
        for hit in goods:
            if hit is not best and (best is None or hit.value.key != best.value.key):
                item = self.items[hit.value.key]
                evidence.append(
                    f'"{hit.value.term}" ({hit.value.lang}) in description also lists {item.id}, HS {item.hs}'
                )
        listed = {h.value.key for h in goods}
        others = [h.value.key for h in item_hits if h.value.key not in listed]
        if others:
            evidence.append(f"description also names: {', '.join(dict.fromkeys(others))}")
        for name, term in markers.items():
            marker = self.file.markers[name]  # type: ignore[index]
            # A shipyard's welders are shipyard equipment; its workers' overalls are clothing.
            if marker.adds_category and (best is None or not everyday[best.value.key]):
                categories.add(marker.adds_category)
            evidence.append(f'"{term}" in description -> {name}')
        condition = Condition.UNKNOWN
        if "used" in markers:
            condition = Condition.USED
        elif "new" in markers:
            condition = Condition.NEW
        return _Description(
            hs_code=code,
            categories=frozenset(categories),
            condition=condition,
            disassembled="disassembled" in markers,
            evidence=tuple(evidence),
            item_ids=item_ids,
        )

    def _hs_categories_of(self, code: str) -> frozenset[str]:
        """``hs_categories``, remembered per code (bounded): reports declare few distinct codes."""
        memo: dict[str, frozenset[str]] = self.__dict__.setdefault("_hs_memo", {})
        known = memo.get(code)
        if known is None:
            known = frozenset(self.hs_categories(code))
            if len(memo) >= DESCRIPTION_MEMO_SIZE:
                memo.clear()
            memo[code] = known
        return known


DESCRIPTION_MEMO_SIZE = 50_000
"""Distinct descriptions (and declared codes) whose reading a catalog remembers (cleared when full)."""


@dataclass(frozen=True, slots=True)
class _Description:
    """What a description's words say on their own; ``classify`` adds what was declared."""

    hs_code: str | None
    categories: frozenset[str]
    condition: Condition
    disassembled: bool
    evidence: tuple[str, ...]
    item_ids: tuple[str, ...]


# Where a description lists separate goods: commas, semicolons, "and", "+", Chinese 、和 及 与,
# Korean 및. Korean particles 와/과 are not split on: they are also inside words.
_LIST_SEPARATOR = re.compile(
    r"\s*(?:[,;，；、&+]|\band\b|\bplus\b|\bas well as\b|以及|和|及|与|및)\s*", re.IGNORECASE
)


class _Listing:
    """The listed parts of a description ("tractors, seeders and 2 lathes"). A part that only
    says what a good is for or comes with ("farm trailers, tipping, for tractors") belongs to the
    nearest part before it that names a good."""

    def __init__(self, description: str, goods_at: Iterable[int]) -> None:
        self.bounds = [0, *(m.start() for m in _LIST_SEPARATOR.finditer(description)), len(description) + 1]
        self._continues = {
            part
            for part in range(1, len(self.bounds) - 1)
            if _CONTINUES.match(description, self.bounds[part])
        }
        self._named = {self._raw(at) for at in goods_at} - self._continues

    def _raw(self, at: int) -> int:
        return bisect_right(self.bounds, at) - 1  # the part whose span holds ``at``

    def of(self, at: int) -> int:
        """The part ``at`` belongs to."""
        part = self._raw(at)
        if part in self._continues:
            part -= 1
            while part > 0 and part not in self._named:
                part -= 1
        return part


# What a good comes with, not what it is: "tractor with spare parts kit", 拖拉机配刀片.
_COMES_WITH = re.compile(
    r"\b(?:with|w/|including|incl|plus)(?:\b|(?<=/))|配(?!件|套)|附带|포함", re.IGNORECASE
)
_CONTINUES = re.compile(r"[\s,;，；、]*(?:for|with|w/|used in|used on|to be used)\b", re.IGNORECASE)
# Where a description turns to what a good is for or comes with: "radar for fishing boats",
# "tractor with front loader", 拖拉机配旋耕机 (配: fitted with; 配件 are parts).
_QUALIFIER = re.compile(
    r"\b(?:for|with|w/|used in|used on|to be used)(?:\b|(?<=/))|配(?!件|套)", re.IGNORECASE
)


def variants(lang: Lang, term: str) -> list[str]:
    """The forms of a catalog term looked for: English spellings and plurals; CJK as written."""
    return english_variants(term) if lang == "en" else [term]


def _expand(kind: Literal["item", "marker", "ignore"], key: str, terms: Terms) -> list[tuple[str, TermRef]]:
    refs = []
    for lang, term in terms.all():
        refs += [(variant, TermRef(kind, key, lang, term)) for variant in variants(lang, term)]
    return refs


def _mention(hit: Hit[TermRef]) -> Mention:
    ref = hit.value
    assert ref.kind != "ignore"
    return Mention(ref.kind, ref.key, ref.term, ref.lang, hit.start, hit.end)


def _check(doc: Document, parsed: CatalogFile) -> list[Problem]:
    problems = []
    known = set(parsed.categories)

    def unknown(cats: Iterable[str], loc: tuple[str | int, ...]) -> None:
        for cat in cats:
            if cat not in known:
                problems.append(
                    Problem(
                        doc.file,
                        doc.line_of(loc),
                        f"unknown category {cat!r} (declare it under categories)",
                    )
                )

    for code, cats in parsed.hs.items():
        unknown(cats, ("hs", code))
    owner: dict[str, tuple[str, int | None]] = {}
    seen_ids: set[str] = set()
    for index, item in enumerate(parsed.items):
        loc: tuple[str | int, ...] = ("items", index)
        if item.id in seen_ids:
            problems.append(Problem(doc.file, doc.line_of(loc), f"item id {item.id!r} is used twice"))
        seen_ids.add(item.id)
        unknown(item.categories, loc)
        if not any(True for _ in item.all()):
            problems.append(Problem(doc.file, doc.line_of(loc), f"item {item.id!r} has no terms"))
        for lang, term in item.all():
            line = doc.line_of((*loc, lang))
            keys = [fold_key(v) for v in variants(lang, term)]
            clash = next((k for k in keys if k in owner and owner[k][0] != item.id), None)
            if clash is not None:
                problems.append(Problem(
                    doc.file, line,
                    f"term {term!r} of {item.id!r} already names {owner[clash][0]!r} (line {owner[clash][1]})",
                ))  # fmt: skip
            for k in keys:
                owner.setdefault(k, (item.id, line))
    crossing_of: dict[str, str] = {}
    for name, terms in parsed.crossings.items():
        for lang, term in terms.all():
            key = fold_key(term)
            if crossing_of.setdefault(key, name) != name:
                problems.append(Problem(
                    doc.file, doc.line_of(("crossings", name, lang)),
                    f"crossing term {term!r} of {name!r} already names {crossing_of[key]!r}",
                ))  # fmt: skip
    for name, marker in parsed.markers.items():
        if marker.adds_category:
            unknown([marker.adds_category], ("markers", name))
    unknown(parsed.everyday, ("everyday",))
    for lang, term in parsed.ignore.all():
        k = fold_key(term)
        if k in owner:
            problems.append(Problem(
                doc.file, doc.line_of(("ignore", lang)),
                f"ignored phrase {term!r} is a term of {owner[k][0]!r} (line {owner[k][1]})",
            ))  # fmt: skip
    return problems


def parse_catalog(doc: Document) -> Catalog:
    parsed = doc.validate(CatalogFile)
    problems = _check(doc, parsed)
    if problems:
        raise ConfigError(problems)
    digest = hashlib.sha256(json.dumps(parsed.model_dump(), sort_keys=True).encode()).hexdigest()
    return Catalog(parsed, digest[:12])


_LOADED: dict[tuple[str, int, int], Catalog] = {}


def load_catalog(path: Path) -> Catalog:
    """The catalog of this file; one read before and unchanged since (same path, size and
    modification time) is not parsed and compiled again: a rule set loaded again, a check of the
    rule files, the console and the notifier each ask for it, and compiling it takes most of a
    second. A catalog is not changed once compiled (its memos aside), so one serves them all."""
    try:
        stat = path.stat()
    except OSError:
        return parse_catalog(load(path))  # says what is wrong with the path
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if (found := _LOADED.get(key)) is None:
        found = parse_catalog(load(path))
        if len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = found
    return found
