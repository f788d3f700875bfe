"""The item catalog: words in three languages -> HS codes and categories (config/catalog.yaml).

One catalog and one matcher serve every stage: the rules stage classifies items with it, and
ingest finds the goods a news article names with it. Pure: no I/O once loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.report import Condition
from services.rules.textmatch import Hit, TermMatcher, english_plurals, normalise
from services.yamlfile import ConfigError, Document, Problem, load

Lang = Literal["en", "zh", "ko"]
MarkerName = Literal["used", "new", "disassembled", "technicians", "shipyard", "exemption"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Terms(_Strict):
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

    @field_validator("hs", mode="before")
    @classmethod
    def _hs(cls, value: object) -> object:
        return str(value).replace(".", "") if isinstance(value, str | int) else value


class Marker(Terms):
    adds_category: str | None = None


class CatalogFile(_Strict):
    version: Literal[1] = 1
    categories: dict[str, str] = Field(min_length=1, description="id -> title")
    hs: dict[str, list[str]] = Field(description="HS prefix -> categories it implies")
    items: list[CatalogItem] = Field(min_length=1)
    markers: dict[MarkerName, Marker] = Field(default_factory=dict)

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
    kind: Literal["item", "marker"]
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
        refs: list[tuple[str, TermRef]] = []
        for item in self.file.items:
            refs += _expand("item", item.id, item)
        for name, marker in self.file.markers.items():
            refs += _expand("marker", name, marker)
        self.matcher = TermMatcher(refs)

    @property
    def categories(self) -> dict[str, str]:
        return self.file.categories

    def hs_categories(self, code: str) -> set[str]:
        found: set[str] = set()
        for length in range(2, len(code) + 1):
            found.update(self.file.hs.get(code[:length], ()))
        return found

    def mentions(self, text: str) -> list[Mention]:
        norm = normalise(text)
        return [_mention(hit) for hit in self.matcher.find(norm)]

    def classify(
        self,
        description: str | None,
        hs_code: str | None,
        condition: Condition = Condition.UNKNOWN,
        disassembled: bool | None = None,
    ) -> Classification:
        evidence: list[str] = []
        categories: set[str] = set()
        item_hits: list[Hit[TermRef]] = []
        markers: dict[str, str] = {}
        if description:
            for hit in self.matcher.find(normalise(description)):
                if hit.value.kind == "item":
                    item_hits.append(hit)
                else:
                    markers.setdefault(hit.value.key, hit.value.term)
        code, source = hs_code, ("declared" if hs_code else None)
        if hs_code:
            cats = self.hs_categories(hs_code)
            categories |= cats
            evidence.append(f"HS {hs_code} declared" + (f" ({', '.join(sorted(cats))})" if cats else ""))
        best = max(item_hits, key=lambda h: (h.end - h.start, -h.start), default=None)
        item_ids = tuple(dict.fromkeys(h.value.key for h in item_hits))
        if best is not None:
            # The most specific term decides: "painting machines for ship hulls" is a painting
            # machine, not a ship. Other items named are kept as evidence only.
            item = self.items[best.value.key]
            categories |= set(item.categories) | self.hs_categories(item.hs)
            if code is None:
                code, source = item.hs, "catalog"
            evidence.append(
                f'"{best.value.term}" ({best.value.lang}) in description -> {item.id}, HS {item.hs}'
            )
        others = [
            h.value.key for h in item_hits if h is not best and h.value.key != (best and best.value.key)
        ]
        if others:
            evidence.append(f"description also names: {', '.join(dict.fromkeys(others))}")
        for name, term in markers.items():
            marker = self.file.markers[name]  # type: ignore[index]
            if marker.adds_category:
                categories.add(marker.adds_category)
            evidence.append(f'"{term}" in description -> {name}')
        if condition is Condition.UNKNOWN:
            if "used" in markers:
                condition = Condition.USED
            elif "new" in markers:
                condition = Condition.NEW
        return Classification(
            hs_code=code,
            hs_source=source,  # type: ignore[arg-type]
            categories=frozenset(categories),
            condition=condition,
            disassembled=bool(disassembled) if disassembled is not None else "disassembled" in markers,
            evidence=tuple(evidence),
            item_ids=item_ids,
        )


def _expand(kind: Literal["item", "marker"], key: str, terms: Terms) -> list[tuple[str, TermRef]]:
    refs = []
    for lang, term in terms.all():
        variants = [term, *english_plurals(normalise(term))] if lang == "en" else [term]
        refs += [(variant, TermRef(kind, key, lang, term)) for variant in variants]
    return refs


def _mention(hit: Hit[TermRef]) -> Mention:
    ref = hit.value
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
            key = normalise(term).strip()
            if key in owner and owner[key][0] != item.id:
                problems.append(Problem(
                    doc.file, doc.line_of((*loc, lang)),
                    f"term {term!r} of {item.id!r} already names {owner[key][0]!r} (line {owner[key][1]})",
                ))  # fmt: skip
            owner.setdefault(key, (item.id, doc.line_of((*loc, lang))))
    for name, marker in parsed.markers.items():
        if marker.adds_category:
            unknown([marker.adds_category], ("markers", name))
    return problems


def parse_catalog(doc: Document) -> Catalog:
    parsed = doc.validate(CatalogFile)
    problems = _check(doc, parsed)
    if problems:
        raise ConfigError(problems)
    digest = hashlib.sha256(json.dumps(parsed.model_dump(), sort_keys=True).encode()).hexdigest()
    return Catalog(parsed, digest[:12])


def load_catalog(path: Path) -> Catalog:
    return parse_catalog(load(path))
