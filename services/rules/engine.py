"""The rule engine: ``evaluate(report, ruleset, now) -> list[Alert]``. Pure: no I/O, no clock.

A rule set is compiled once (catalog matcher, one automaton for every rule's words, each
condition turned into a closure); a report is classified once (every item's HS code, categories,
condition, word hits), then each rule's closure reads those facts. Every condition that holds
leaves evidence in words, so an alert can always say why it fired.

A report with text and no items (an outside producer's ``XADD``, an HTTP post, a JSON Lines row)
has its goods found in its text by the extractor ingest reads articles with
(``services.goods.extract``), with the crossing and countries the text names where the report
gives none; each good keeps the sentence that named it, which its alert quotes (as do the
items ingest found in an article, whose text the report carries). Items the catalog
cannot classify are named in every alert of their report (``unrecognised``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.alert import Alert, Severity, alert_id_for
from schemas.report import MAX_ITEMS, ImportReport, ReportItem
from schemas.rules import Amount, Count, Exception_, ItemCondition, ReportCondition, Rule
from services.goods.catalog import Catalog, Classification
from services.goods.extract import SUMMARY_PREFIX, Extraction, Extractor
from services.goods.hscodes import hs_display
from services.money import Rates, format_amount
from services.rules.index import Anchor, RuleIndex, word_key
from services.rules.temporal import Pending, frequency_pending, new_term_pending
from services.sanctions.index import ScreeningIndex
from services.sanctions.matcher import PartyScreen, party_test
from services.textmatch import TermMatcher, clip, name_key, normalise

# ---------------------------------------------------------------- facts about one report


@dataclass(frozen=True, slots=True)
class ItemFacts:
    index: int
    item: ReportItem
    cls: Classification
    words: frozenset[str]
    anchors: frozenset[Anchor] = frozenset()
    """What the item shows the rule index: its HS prefixes, categories and words."""
    quote: str | None = None
    """For a good found in the report's text: the sentence that named it."""
    marks: tuple[tuple[int, int], ...] = ()
    """Spans in ``quote`` of the words that named it and the markers that qualify it."""
    line: dict[int, list[str] | None] = field(default_factory=dict, compare=False, repr=False)
    """What the rule set's item tests that read only the line said of it, by test: shared by
    every item with the same line (description, declared code, condition, disassembled)."""

    @property
    def unrecognised(self) -> bool:
        """The catalog could not classify it: no HS code given, no catalog term in its words."""
        return self.cls.hs_code is None and not self.cls.item_ids


@dataclass(frozen=True, slots=True)
class ReportFacts:
    report: ImportReport
    items: tuple[ItemFacts, ...]
    text_words: frozenset[str]
    crossing: str
    crossing_name: str | None = None
    """The crossing under its catalog name (丹东 -> Dandong-Sinuiju), else as written."""
    parties: PartyScreen | None = None
    unrecognised: tuple[str, ...] = ()
    """Descriptions of the items the catalog could not classify."""
    text: TextQuotes | None = None
    """The goods an article's text names, for quoting the items ingest found in it."""

    def quote(self, item: ItemFacts) -> tuple[str | None, tuple[tuple[int, int], ...]]:
        """Where the report's text names an item: its own quote, or the text's for its good."""
        if item.quote is not None or self.text is None:
            return item.quote, item.marks
        return self.text.quote(item.cls)


class TextQuotes:
    """The goods a report's text names, read only when an alert quotes one of its items."""

    def __init__(self, extractor: Extractor, text: str) -> None:
        self.extractor = extractor
        self.text = text
        self._found: Extraction | None = None

    def quote(self, cls: Classification) -> tuple[str | None, tuple[tuple[int, int], ...]]:
        if self._found is None:
            self._found = self.extractor.extract(self.text)
        for item_id in cls.item_ids:
            good = self._found.items.get(item_id)
            if good is not None and good.quote is not None:
                return good.quote, tuple(good.marks)
        return None, ()


@dataclass
class Evidence:
    """A condition that held: the items it held for, each with evidence, and report evidence."""

    items: dict[int, list[str]] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)

    def merge(self, other: Evidence) -> Evidence:
        if not self.items and not self.evidence:  # the usual first merge: a copy will do
            self.items = {index: list(ev) for index, ev in other.items.items()}
            self.evidence = list(other.evidence)
            return self
        items = self.items
        for index, ev in other.items.items():
            mine = items.get(index)
            if mine is None:  # new to this evidence: its evidence once each, in order
                items[index] = list(dict.fromkeys(ev))
            else:
                mine.extend(e for e in ev if e not in mine)
        if self.evidence:
            self.evidence.extend(e for e in other.evidence if e not in self.evidence)
        else:
            self.evidence = list(dict.fromkeys(other.evidence))
        return self


ItemTest = Callable[[ItemFacts], list[str] | None]
ReportTest = Callable[[ReportFacts], Evidence | None]


# ---------------------------------------------------------------- compiling conditions


def _hs_test(selectors: Sequence[str]) -> Callable[[str], str | None]:
    prefixes = tuple(s for s in selectors if "-" not in s)
    ranges = [(int(lo), int(hi), len(lo)) for lo, hi in (s.split("-") for s in selectors if "-" in s)]

    def find(code: str) -> str | None:
        for prefix in prefixes:
            if code.startswith(prefix):
                return prefix
        for lo, hi, width in ranges:
            if len(code) >= width and lo <= int(code[:width]) <= hi:
                return f"{lo:0{width}d}-{hi:0{width}d}"
        return None

    # Reports declare and the catalog gives few distinct codes: each is looked up once (bounded).
    memo: dict[str, str | None] = {}

    def test(code: str) -> str | None:
        try:
            return memo[code]
        except KeyError:
            if len(memo) >= HS_MEMO_SIZE:
                memo.clear()
            found = memo[code] = find(code)
            return found

    return test


HS_MEMO_SIZE = 4_096
"""Distinct HS codes each compiled ``hs:`` condition remembers its answer for (cleared when full)."""


def _between(value: float, bound: Amount | Count) -> bool:
    return (bound.gte is None or value >= bound.gte) and (bound.lte is None or value <= bound.lte)


def _bound_text(bound: Amount | Count) -> str:
    """``is at least 5,000 CNY``, ``is at most 10``, ``is between 1,000 and 5,000 USD``."""
    unit = f" {bound.currency}" if isinstance(bound, Amount) else ""
    if bound.gte is not None and bound.lte is not None:
        return f"is between {format_amount(bound.gte)} and {format_amount(bound.lte)}{unit}"
    if bound.gte is not None:
        return f"is at least {format_amount(bound.gte)}{unit}"
    assert bound.lte is not None
    return f"is at most {format_amount(bound.lte)}{unit}"


@dataclass
class Compiler:
    catalog: Catalog
    rates: Rates
    words: set[str] = field(default_factory=set)

    def word_keys(self, words: Sequence[str]) -> list[str]:
        keys = [word_key(w) for w in words]
        self.words.update(keys)
        return keys

    def item(self, cond: ItemCondition) -> ItemTest:
        tests: list[ItemTest] = []
        if cond.all_ is not None:
            parts = [self.item(c) for c in cond.all_]
            tests.append(lambda f: _all_item(parts, f))
        if cond.any_ is not None:
            options = [self.item(c) for c in cond.any_]
            tests.append(lambda f: _any_item(options, f))
        if cond.not_ is not None:
            inner = self.item(cond.not_)
            tests.append(lambda f: None if inner(f) is not None else [])
        if cond.hs is not None:
            hs = _hs_test(cond.hs)

            def hs_holds(f: ItemFacts) -> list[str] | None:
                code = f.cls.hs_code
                hit = hs(code) if code else None
                if hit is None or code is None:
                    return None
                how = "declared" if f.cls.hs_source == "declared" else "classified from the description"
                return [f"HS {hs_display(code)} ({how}) {_hs_scope(code, hit)}"]

            tests.append(hs_holds)
        if cond.categories is not None:
            wanted = frozenset(cond.categories)

            def in_category(f: ItemFacts) -> list[str] | None:
                hit = wanted & f.cls.categories
                return [f"category {', '.join(sorted(hit))}"] if hit else None

            tests.append(in_category)
        if cond.words is not None:
            keys = self.word_keys(cond.words)

            def has_words(f: ItemFacts) -> list[str] | None:
                hit = [k for k in keys if k in f.words]
                return [f'"{k}" in the description' for k in hit] if hit else None

            tests.append(has_words)
        if cond.condition is not None:
            states = frozenset(cond.condition)
            tests.append(
                lambda f: [f"condition {f.cls.condition.value}"] if f.cls.condition in states else None
            )
        if cond.disassembled is not None:
            wanted_d = cond.disassembled
            tests.append(
                lambda f: [("shipped disassembled" if wanted_d else "shipped assembled")]
                if f.cls.disassembled == wanted_d else None
            )  # fmt: skip
        if cond.unit_price is not None:
            tests.append(self._money("unit price", cond.unit_price, lambda i: i.unit_price))
        if cond.value is not None:
            tests.append(self._money(
                "value", cond.value,
                lambda i: i.unit_price * i.quantity if i.unit_price is not None and i.quantity is not None else None,
            ))  # fmt: skip
        if cond.quantity is not None:
            q = cond.quantity
            tests.append(
                lambda f: [f"quantity {f.item.quantity:g} {_bound_text(q)}"]
                if f.item.quantity is not None and _between(f.item.quantity, q) else None
            )  # fmt: skip
        return _all_items_of(tests)

    def _money(self, label: str, bound: Amount, amount_of: Callable[[ReportItem], float | None]) -> ItemTest:
        rates = self.rates

        def test(f: ItemFacts) -> list[str] | None:
            amount = amount_of(f.item)
            if amount is None or f.item.currency is None:
                return None
            converted = rates.convert(amount, f.item.currency, bound.currency)
            if converted is None or not _between(converted, bound):
                return None
            shown = f"{amount:,.0f} {f.item.currency}"
            if f.item.currency != bound.currency:
                shown += f" (about {converted:,.0f} {bound.currency})"
            return [f"{label} {shown} {_bound_text(bound)}"]

        return test

    def report(self, cond: ReportCondition) -> ReportTest:
        tests: list[ReportTest] = []
        if cond.all_ is not None:
            parts = [self.report(c) for c in cond.all_]
            tests.append(lambda f: _all_report(parts, f))
        if cond.any_ is not None:
            options = [self.report(c) for c in cond.any_]
            tests.append(lambda f: _any_report(options, f))
        if cond.not_ is not None:
            inner = self.report(cond.not_)
            tests.append(lambda f: None if inner(f) is not None else Evidence())
        if cond.item is not None:
            item_test = self.item(cond.item)
            if _reads_only_the_line(cond.item):
                item_test = _per_line(item_test)

            def some_item(f: ReportFacts) -> Evidence | None:
                held = {i.index: ev for i in f.items if (ev := item_test(i)) is not None}
                return Evidence(items=held) if held else None

            tests.append(some_item)
        if cond.words is not None:
            keys = self.word_keys(cond.words)

            def has_words(f: ReportFacts) -> Evidence | None:
                out = Evidence()
                for key in keys:
                    if key in f.text_words:
                        out.evidence.append(f'"{key}" in the report text')
                    for item in f.items:
                        if key in item.words:
                            out.items.setdefault(item.index, []).append(f'"{key}" in the description')
                return out if out.evidence or out.items else None

            tests.append(has_words)
        for name in ("origin_country", "destination_country", "source"):
            values = getattr(cond, name)
            if values is not None:
                tests.append(_field_in(name, frozenset(values)))
        if cond.crossing is not None:
            # A value naming a catalog crossing matches it however the report writes it; any
            # other value matches on word boundaries inside the crossing as written.
            named = {
                n
                for c in cond.crossing
                if (n := self.catalog.crossing_name(c)) in self.catalog.file.crossings
            }
            patterns = [re.compile(rf"(?<!\w){re.escape(normalise(c).strip())}(?!\w)") for c in cond.crossing]

            def at_crossing(f: ReportFacts) -> Evidence | None:
                if (f.crossing_name in named) or (f.crossing and any(p.search(f.crossing) for p in patterns)):
                    return Evidence(evidence=[f"crossing {f.report.crossing}"])
                return None

            tests.append(at_crossing)
        if cond.total_value is not None:
            bound = cond.total_value
            rates = self.rates

            def total(f: ReportFacts) -> Evidence | None:
                sum_ = 0.0
                for i in f.items:
                    it = i.item
                    if it.unit_price is None or it.quantity is None or it.currency is None:
                        continue
                    converted = rates.convert(it.unit_price * it.quantity, it.currency, bound.currency)
                    sum_ += converted or 0.0
                if sum_ and _between(sum_, bound):
                    return Evidence(
                        evidence=[f"total value about {sum_:,.0f} {bound.currency} {_bound_text(bound)}"]
                    )
                return None

            tests.append(total)
        if cond.party is not None:
            screen = party_test(cond.party)
            tests.append(lambda f: None if (ev := screen(f.parties)) is None else Evidence(evidence=ev))
        return _all_reports_of(tests)


def _reads_only_the_line(cond: ItemCondition) -> bool:
    """Whether an item condition reads only what the line says (its classification and words),
    not the item's quantity or prices: then it holds alike for every item of that line."""
    if cond.unit_price is not None or cond.value is not None or cond.quantity is not None:
        return False
    nested = [*(cond.all_ or ()), *(cond.any_ or ()), *([cond.not_] if cond.not_ is not None else [])]
    return all(_reads_only_the_line(c) for c in nested)


_LINE_TESTS = itertools.count()


def _per_line(test: ItemTest) -> ItemTest:
    """``test``, answered once per item line (customs tables repeat their lines endlessly) and
    remembered with the line's classification; each caller gets its own copy of the evidence."""
    slot = next(_LINE_TESTS)

    def remembered(f: ItemFacts) -> list[str] | None:
        memo = f.line
        try:
            found = memo[slot]
        except KeyError:
            found = memo[slot] = test(f)
        return None if found is None else list(found)

    return remembered


def _field_in(name: str, values: frozenset[str]) -> ReportTest:
    label = name.replace("_", " ")

    def test(f: ReportFacts) -> Evidence | None:
        value = getattr(f.report, name)
        return Evidence(evidence=[f"{label} {value}"]) if value in values else None

    return test


def _all_items_of(tests: list[ItemTest]) -> ItemTest:
    # One test needs no wrapper: conditions are mostly single keys, and every call counts.
    if len(tests) == 1:
        return tests[0]
    return lambda f: _all_item(tests, f)


def _all_reports_of(tests: list[ReportTest]) -> ReportTest:
    if len(tests) == 1:
        return tests[0]
    return lambda f: _all_report(tests, f)


def _all_item(tests: Sequence[ItemTest], facts: ItemFacts) -> list[str] | None:
    evidence: list[str] = []
    for test in tests:
        found = test(facts)
        if found is None:
            return None
        evidence += found
    return evidence


def _any_item(tests: Sequence[ItemTest], facts: ItemFacts) -> list[str] | None:
    evidence: list[str] | None = None
    for test in tests:
        found = test(facts)
        if found is not None:
            evidence = (evidence or []) + found
    return evidence


def _all_report(tests: Sequence[ReportTest], facts: ReportFacts) -> Evidence | None:
    held = []
    for test in tests:
        found = test(facts)
        if found is None:
            return None
        held.append(found)
    # Every test returns evidence of its own, never kept elsewhere: the first one is taken
    # as it is (what merging it into an empty one copies), the others merged into it.
    out = held[0] if held else Evidence()
    for found in held[1:]:
        out.merge(found)
    return out


def _any_report(tests: Sequence[ReportTest], facts: ReportFacts) -> Evidence | None:
    out: Evidence | None = None
    for test in tests:
        found = test(facts)
        if found is not None:
            out = (out or Evidence()).merge(found)
    return out


# ---------------------------------------------------------------- rules and rule sets


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    version: str
    test: ReportTest
    escalations: tuple[tuple[ReportTest, Severity, str], ...]
    exceptions: tuple[tuple[str, str, Callable[[ReportFacts, datetime], bool]], ...]


ITEM_MEMO_SIZE = 50_000
"""Distinct item lines whose classification a rule set remembers (cleared when full)."""


TEXT_MEMO_SIZE = 10_000
"""Distinct report texts (and crossings) whose words a rule set remembers (cleared when full)..."""
TEXT_MEMO_LENGTH = 500
"""... when no longer than this: an article's text is read once and not kept."""


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[CompiledRule, ...]
    catalog: Catalog
    rates: Rates
    words: TermMatcher[str]
    version: str
    sources: tuple[str, ...] = ()
    index: RuleIndex = field(default_factory=lambda: RuleIndex({}, (), 0))
    extractor: Extractor | None = None
    """Finds the goods of a report that has text and no items (built from catalog and rates)."""
    _seen_items: dict[
        tuple[object, ...],
        tuple[Classification, frozenset[str], frozenset[Anchor], dict[int, list[str] | None]],
    ] = field(default_factory=dict, init=False, compare=False, repr=False)

    _seen_texts: dict[str, frozenset[str]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    _seen_crossings: dict[str, str] = field(default_factory=dict, init=False, compare=False, repr=False)

    def candidates(self, facts: ReportFacts) -> list[CompiledRule]:
        """The rules whose anchors the report shows, plus the unanchored ones, in rule order."""
        return [self.rules[i] for i in self.index.candidates(shown_anchors(facts))]

    def facts(
        self, report: ImportReport, screening: ScreeningIndex | None = None, now: datetime | None = None
    ) -> ReportFacts:
        quotes: list[tuple[str | None, tuple[tuple[int, int], ...]]] = []
        text_quotes = None
        if not report.items and report.text and self.extractor is not None:
            report, quotes = self._from_text(report, self.extractor)
        elif report.text and report.text.startswith(SUMMARY_PREFIX) and self.extractor is not None:
            # An article ingest read: its items were found in this text, which quotes them. Other
            # reports' items come from their own lines, whatever their text says.
            text_quotes = TextQuotes(self.extractor, report.text)
        items = []
        seen = self._seen_items
        for index, item in enumerate(report.items):
            # Customs data repeats the same lines endlessly: classify each distinct line once
            # per rule set (pure, so a cached answer is the answer), in a bounded memo.
            key = (item.description, item.hs_code, item.condition, item.disassembled)
            known = seen.get(key)
            if known is None:
                cls = self.catalog.classify(item.description, item.hs_code, item.condition, item.disassembled)
                words = self._words(item.description)
                known = (cls, words, _item_anchors(cls, words), {})
                if len(seen) >= ITEM_MEMO_SIZE:
                    seen.clear()
                seen[key] = known
            cls, words, anchors, line = known
            quote, marks = quotes[index] if quotes else (None, ())
            items.append(ItemFacts(index, item, cls, words, anchors, quote, marks, line))
        unrecognised = tuple(
            dict.fromkeys(i.item.description for i in items if i.item.description and i.unrecognised)
        )
        return ReportFacts(
            report=report,
            items=tuple(items),
            text_words=self._text_words(report.text),
            crossing=self._crossing(report.crossing),
            crossing_name=self.catalog.crossing_name(report.crossing),
            parties=PartyScreen(screening, report, now) if screening is not None else None,
            unrecognised=unrecognised,
            text=text_quotes,
        )

    @staticmethod
    def _from_text(
        report: ImportReport, extractor: Extractor
    ) -> tuple[ImportReport, list[tuple[str | None, tuple[tuple[int, int], ...]]]]:
        """The report with the goods its text names as its items, as an article's would be, and
        the crossing and countries the text names where the report gives none."""
        found = extractor.extract(report.text or "")
        goods = list(found.items.values())[:MAX_ITEMS]
        update: dict[str, object] = {
            "items": [ReportItem.model_validate(extractor.item(good)) for good in goods]
        }
        named = {
            "crossing": "; ".join(found.crossings) or None,
            "origin_country": found.origin_country,
            "destination_country": found.destination_country,
        }
        update |= {name: value for name, value in named.items() if value and getattr(report, name) is None}
        return report.model_copy(update=update), [(good.quote, tuple(good.marks)) for good in goods]

    def _text_words(self, text: str | None) -> frozenset[str]:
        """``_words`` of a report's text, remembered for short texts (bounded): reports from one
        source repeat their remarks ("border petty trade", a summary line) over and over."""
        if not text or len(text) > TEXT_MEMO_LENGTH:
            return self._words(text)
        memo = self._seen_texts
        known = memo.get(text)
        if known is None:
            if len(memo) >= TEXT_MEMO_SIZE:
                memo.clear()
            known = memo[text] = self._words(text)
        return known

    def _crossing(self, crossing: str | None) -> str:
        """A report's crossing normalised, remembered per spelling (reports name few crossings)."""
        memo = self._seen_crossings
        known = memo.get(crossing or "")
        if known is None:
            if len(memo) >= TEXT_MEMO_SIZE:
                memo.clear()
            known = memo[crossing or ""] = normalise(crossing or "")
        return known

    def _words(self, text: str | None) -> frozenset[str]:
        if not text:
            return frozenset()
        return frozenset(hit.term for hit in self.words.find_all(normalise(text)))


def shown_anchors(facts: ReportFacts) -> set[Anchor]:
    """Every anchor the report shows: HS prefixes, categories, words, countries and source."""
    shown: set[Anchor] = {("word", w) for w in facts.text_words}
    for item in facts.items:
        shown |= item.anchors
    report = facts.report
    for name in ("origin_country", "destination_country", "source"):
        value = getattr(report, name)
        if value is not None:
            shown.add((name, value))
    return shown


def _item_anchors(cls: Classification, words: frozenset[str]) -> frozenset[Anchor]:
    code = cls.hs_code or ""
    return frozenset((
        *(("hs", code[:n]) for n in range(2, len(code) + 1)),
        *(("cat", c) for c in cls.categories),
        *(("word", w) for w in words),
    ))  # fmt: skip


def rule_version(rule: Rule) -> str:
    canonical = json.dumps(rule.model_dump(mode="json", by_alias=True), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _exception_test(exc: Exception_, catalog: Catalog) -> Callable[[ReportFacts, datetime], bool]:
    # A crossing is compared under its catalog name, as rule conditions and keys compare it:
    # an exception for 신의주 covers a report written "Dandong-Sinuiju".
    fields = {
        name: frozenset(
            name_key((catalog.crossing_name(v) or v) if name == "crossing" else v) for v in values
        )
        for name in ("importer", "exporter", "source", "crossing")
        if (values := getattr(exc, name)) is not None
    }
    words = [normalise(w).strip() for w in exc.words] if exc.words else []
    expires = exc.expires

    def test(f: ReportFacts, now: datetime) -> bool:
        if expires is not None and now.date() > expires:  # valid through its expiry date
            return False
        for name, allowed in fields.items():
            value = f.crossing_name if name == "crossing" else getattr(f.report, name)
            if value is None or name_key(value) not in allowed:
                return False
        if words:
            haystack = (
                normalise(f.report.text or "")
                + " "
                + " ".join(normalise(i.item.description or "") for i in f.items)
            )
            if not any(w in haystack for w in words):
                return False
        return True

    return test


def compile_rules(
    rules: Sequence[Rule], catalog: Catalog, rates: Rates, sources: Sequence[str] = ()
) -> RuleSet:
    compiler = Compiler(catalog, rates)
    compiled = []
    for rule in rules:
        if not rule.enabled:
            continue
        compiled.append(CompiledRule(
            rule=rule,
            version=rule_version(rule),
            test=compiler.report(rule.when),
            escalations=tuple((compiler.report(e.when), e.to, e.reason) for e in rule.escalate),
            exceptions=tuple((e.id, e.reason, _exception_test(e, catalog)) for e in rule.exceptions),
        ))  # fmt: skip
    words = TermMatcher((w, w) for w in compiler.words)
    digest = hashlib.sha256()
    for done in compiled:
        digest.update(done.version.encode())
    digest.update(catalog.version.encode())
    digest.update(json.dumps(rates.rates, sort_keys=True).encode())
    index = RuleIndex.build([c.rule.when for c in compiled])
    return RuleSet(
        tuple(compiled),
        catalog,
        rates,
        words,
        digest.hexdigest()[:12],
        tuple(sources),
        index,
        Extractor(catalog, rates),
    )


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Verdict:
    """One rule's result on one report: fired, suppressed by an exception and why, or waiting
    on state (a rule over time fires only if the state the stage keeps says so)."""

    rule_id: str
    alert: Alert | None
    suppressed_by: str | None = None
    pending: Pending | None = None


def evaluate(
    report: ImportReport, ruleset: RuleSet, now: datetime, screening: ScreeningIndex | None = None
) -> list[Alert]:
    """The alerts that fire on this report alone; rules over time come back from ``explain``
    as ``pending`` and fire only once their state is applied (``temporal.settle``).
    ``screening``: the loaded sanctions lists, for ``party:`` conditions (none: they never hold)."""
    return [v.alert for v in explain(report, ruleset, now, screening) if v.alert is not None]


def explain(
    report: ImportReport,
    ruleset: RuleSet,
    now: datetime,
    screening: ScreeningIndex | None = None,
    *,
    use_index: bool = True,
) -> list[Verdict]:
    return examine(report, ruleset, now, screening, use_index=use_index)[1]


def examine(
    report: ImportReport,
    ruleset: RuleSet,
    now: datetime,
    screening: ScreeningIndex | None = None,
    *,
    use_index: bool = True,
) -> tuple[ReportFacts, list[Verdict]]:
    """``explain``, with the facts the verdicts were reached on (the goods found in the text of a
    report without items, the items the catalog could not classify)."""
    facts = ruleset.facts(report, screening, now)
    verdicts = []
    skips = facts.parties.skip_lines() if facts.parties is not None else []
    for compiled in ruleset.candidates(facts) if use_index else ruleset.rules:
        held = compiled.test(facts)
        if held is None:
            # A reviewed "not this party" exception that alone kept the rule from firing is shown.
            if skips and facts.parties is not None:
                unskipped = dataclasses.replace(facts, parties=facts.parties.ignoring_exceptions())
                if compiled.test(unskipped) is not None:
                    verdicts.append(Verdict(compiled.rule.id, None, "; ".join(skips)))
            continue
        suppressed = next(
            (f"exception {eid}: {reason}" for eid, reason, test in compiled.exceptions if test(facts, now)),
            None,
        )
        if suppressed:
            verdicts.append(Verdict(compiled.rule.id, None, suppressed))
            continue
        matched = [facts.items[i] for i in sorted(held.items)]
        rule = compiled.rule
        build = functools.partial(_alert, compiled, facts, held, matched, now, ruleset.rates)
        ids = (rule.id, facts.report.report_id)
        if rule.frequency is not None:
            per = rule.frequency.per
            # A report without a value to count it under (no crossing) joins no group.
            if all(_values(name, facts, matched) for name in per):
                key = _key("", per, facts, matched)
                verdicts.append(
                    Verdict(rule.id, None, pending=frequency_pending(rule.frequency, ids, build, key))
                )
        elif rule.new_term is not None:
            terms = _values(rule.new_term.field, facts, matched)
            if terms:  # a report without the field has no term to be new
                verdicts.append(
                    Verdict(rule.id, None, pending=new_term_pending(rule.new_term, ids, build, terms))
                )
        else:
            verdicts.append(Verdict(rule.id, build()))
    return facts, verdicts


def _alert(
    compiled: CompiledRule,
    facts: ReportFacts,
    held: Evidence,
    matched: Sequence[ItemFacts],
    now: datetime,
    rates: Rates,
    state_reasons: Sequence[str] = (),
) -> Alert:
    """The explained alert; ``state_reasons``: why a rule over time fired (its count, its new term)."""
    rule, report = compiled.rule, facts.report
    evidence = list(held.evidence)
    raised: tuple[Severity, str] | None = None
    lowered: tuple[Severity, str] | None = None
    # Which items each escalation that held is about: an item condition names its items, a
    # report condition stands for all of them. An item's own severity says whether it was raised.
    indexes = [f.index for f in matched]
    item_raised: dict[int, tuple[Severity, str]] = {}
    item_lowered: dict[int, tuple[Severity, str]] = {}
    for test, to, reason in compiled.escalations:
        held_by = test(facts)
        if held_by is None:
            continue
        targets = [i for i in indexes if i in held_by.items] if held_by.items else indexes
        if to.rank > rule.severity.rank:
            if raised is None or to.rank > raised[0].rank:
                raised = (to, reason)
            for i in targets:
                if i not in item_raised or to.rank > item_raised[i][0].rank:
                    item_raised[i] = (to, reason)
        elif to.rank < rule.severity.rank:
            if lowered is None or to.rank < lowered[0].rank:
                lowered = (to, reason)
            for i in targets:
                if i not in item_lowered or to.rank < item_lowered[i][0].rank:
                    item_lowered[i] = (to, reason)
    # A raise beats a lowering: one reason to relax never hides another reason to worry.
    severity = rule.severity
    if raised is not None:
        severity = raised[0]
        evidence.append(f"severity raised to {severity.value}: {raised[1]}")
    elif lowered is not None:
        severity = lowered[0]
        evidence.append(f"severity lowered to {severity.value}: {lowered[1]}")
    evidence += state_reasons
    # Plain dicts, validated once inside the Alert (one pass in pydantic-core, no model per item).
    items: list[dict[str, Any]] = [
        {
            "index": f.index,
            "description": f.item.description,
            "hs_code": f.cls.hs_code,
            "categories": sorted(f.cls.categories),
            "evidence": (ev := held.items[f.index]) + [e for e in f.cls.evidence if e not in ev],
            "classification": list(f.cls.evidence),
            **_item_severity(f.index, rule.severity, item_raised, item_lowered),
            **_line_facts(f.item, rates),
        }
        for f in matched
    ]
    for entry, f in zip(items, matched, strict=True):
        quote, marks = facts.quote(f)
        if quote is not None:
            entry["quote"], entry["marks"] = quote, list(marks)
    return Alert(
        alert_id=alert_id_for(report.report_id, rule.id, compiled.version),
        rule_id=rule.id,
        rule_version=compiled.version,
        severity=severity,
        report_id=report.report_id,
        title=rule.title,
        summary=_summary(facts, matched),
        matched_items=items,
        evidence=evidence,
        legal_basis=rule.legal_basis,
        tags=list(rule.tags),
        created_at=now,
        source=report.source,
        crossing=facts.crossing_name,
        origin_country=report.origin_country,
        destination_country=report.destination_country,
        importer=report.importer,
        exporter=report.exporter,
        reported_at=report.reported_at,
        url=report.url,
        dedup_key=_key(rule.id, rule.dedup, facts, matched),
        group_key=_key("", rule.group_by, facts, matched),
        realert=rule.realert,
        unrecognised=list(facts.unrecognised),
    )


def _item_severity(
    index: int,
    base: Severity,
    raised: dict[int, tuple[Severity, str]],
    lowered: dict[int, tuple[Severity, str]],
) -> dict[str, object]:
    """The severity this item alone warrants, and why it differs from the rule's."""
    change = raised.get(index) or lowered.get(index)
    if change is None:
        return {"severity": base}
    word = "raised" if change[0].rank > base.rank else "lowered"
    return {"severity": change[0], "severity_reason": f"severity {word} to {change[0].value}: {change[1]}"}


def _hs_scope(code: str, selector: str) -> str:
    """Where a code falls in a rule's HS selector, in words: a chapter range, a chapter, a heading."""
    if "-" in selector:
        low, high = selector.split("-")
        kind = {2: "chapters", 4: "headings"}.get(len(low), "codes")
        return f"falls in {kind} {low} to {high}"
    if selector == code:
        return "is named in the rule"
    kind = {2: "chapter", 4: "heading"}.get(len(selector), "subheading")
    return f"falls in {kind} {hs_display(selector)}"


def _line_facts(item: ReportItem, rates: Rates) -> dict[str, object]:
    """Quantity, unit, prices and the line's value (stated, and in the rates table's base)."""
    out: dict[str, object] = {}
    if item.quantity is not None:
        out["quantity"] = item.quantity
    if item.unit:
        out["unit"] = item.unit
    if item.unit_price is None:
        return out
    currency = item.currency or rates.base
    out["unit_price"], out["currency"] = item.unit_price, currency
    if item.quantity is not None:
        value = item.unit_price * item.quantity
        out["value"] = round(value, 2)
        converted = rates.convert(value, currency, rates.base)
        if converted is not None:
            out["value_base"], out["base_currency"] = round(converted, 2), rates.base
    return out


def _summary(facts: ReportFacts, matched: Sequence[ItemFacts]) -> str:
    report = facts.report
    route = " -> ".join(c for c in (report.origin_country, report.destination_country) if c)
    where = ", ".join(p for p in (report.crossing and f"via {report.crossing}", route) if p)
    names = []
    for m in matched[:5]:
        label = m.item.description or "item"
        if m.cls.hs_code:
            label += f" (HS {m.cls.hs_code})"
        names.append(label)
    if len(matched) > 5:
        names.append(f"and {len(matched) - 5} more")
    what = "; ".join(names) if names else clip(report.text or "", 160)
    return f"{what}" + (f" [{where}]" if where else "")


def _values(name: str, facts: ReportFacts, matched: Sequence[ItemFacts]) -> list[str]:
    """A key field's values: from the matched items (HS, category) or the report."""
    if name in ("hs_code", "hs_heading", "hs_chapter"):
        width = {"hs_code": 6, "hs_heading": 4, "hs_chapter": 2}[name]
        return sorted({m.cls.hs_code[:width] for m in matched if m.cls.hs_code})
    if name == "category":
        return sorted({c for m in matched for c in m.cls.categories})
    value = facts.crossing_name if name == "crossing" else getattr(facts.report, name)
    # Ids stay as they are; names people type are compared case- and spacing-blind.
    text_field = name in ("crossing", "importer", "exporter")
    return [normalise(value).strip() if text_field else value] if value else []


def _key(prefix: str, fields: Sequence[str], facts: ReportFacts, matched: Sequence[ItemFacts]) -> str:
    parts = [prefix] if prefix else []
    for name in fields:
        parts.append(f"{name}={','.join(_values(name, facts, matched))}")
    return "|".join(parts)
