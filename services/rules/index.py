"""Which rules can possibly fire on a report, found without evaluating them all.

Each rule gets a set of *anchors*: facts at least one of which a report must show for the
rule's ``when`` to hold (an HS prefix, a category, a word, a country). A report lists the
anchors it shows; only rules with one of those anchors, plus the rules no anchor can be found
for (a ``not`` at the top, a bare price condition), are evaluated. Anchors are necessary
conditions only, never sufficient: the rule's own test still decides, so results are the same
with and without the index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from schemas.rules import ItemCondition, ReportCondition
from services.textmatch import normalise

Anchor = tuple[str, str]
"""``("hs", "8456")``, ``("cat", "dual-use")``, ``("word", "technicians")``, ``("destination_country", "KP")``."""

MAX_RANGE_ANCHORS = 1_000
"""A range wider than this (``"0100-9999"``) is not worth indexing: the rule is always evaluated."""

# A field anchor such as destination KP is true of most reports, so it is used only when a
# condition offers nothing sharper.
_WEAK_KINDS = frozenset({"origin_country", "destination_country", "source"})


def word_key(word: str) -> str:
    """The form rule words are compiled to, shared with the engine so anchors and tests agree."""
    return normalise(word).strip()


def _hs_anchors(selectors: Sequence[str]) -> frozenset[Anchor] | None:
    found: set[Anchor] = set()
    for selector in selectors:
        if "-" not in selector:
            found.add(("hs", selector))
            continue
        low, high = selector.split("-")
        if int(high) - int(low) + 1 > MAX_RANGE_ANCHORS:
            return None
        found.update(("hs", f"{code:0{len(low)}d}") for code in range(int(low), int(high) + 1))
    return frozenset(found)


def _sharpest(options: Iterable[frozenset[Anchor] | None]) -> frozenset[Anchor] | None:
    """For conditions that must all hold, any one's anchors will do: take the most selective."""
    known = [o for o in options if o is not None]
    if not known:
        return None
    return min(known, key=lambda a: (any(kind in _WEAK_KINDS for kind, _ in a), len(a)))


def _union(options: Sequence[frozenset[Anchor] | None]) -> frozenset[Anchor] | None:
    """For conditions of which one must hold, the report needs an anchor of one of them."""
    if not options or any(o is None for o in options):
        return None
    return frozenset().union(*(o for o in options if o is not None))


def item_anchors(cond: ItemCondition) -> frozenset[Anchor] | None:
    parts: list[frozenset[Anchor] | None] = []
    if cond.all_ is not None:
        parts.append(_sharpest(item_anchors(c) for c in cond.all_))
    if cond.any_ is not None:
        parts.append(_union([item_anchors(c) for c in cond.any_]))
    if cond.hs is not None:
        parts.append(_hs_anchors(cond.hs))
    if cond.categories is not None:
        parts.append(frozenset(("cat", c) for c in cond.categories))
    if cond.words is not None:
        parts.append(frozenset(("word", word_key(w)) for w in cond.words))
    # not, condition, disassembled, prices and quantities offer no anchor of their own.
    return _sharpest(parts)


def report_anchors(cond: ReportCondition) -> frozenset[Anchor] | None:
    parts: list[frozenset[Anchor] | None] = []
    if cond.all_ is not None:
        parts.append(_sharpest(report_anchors(c) for c in cond.all_))
    if cond.any_ is not None:
        parts.append(_union([report_anchors(c) for c in cond.any_]))
    if cond.item is not None:
        parts.append(item_anchors(cond.item))
    if cond.words is not None:
        parts.append(frozenset(("word", word_key(w)) for w in cond.words))
    for name in ("origin_country", "destination_country", "source"):
        values = getattr(cond, name)
        if values is not None:
            parts.append(frozenset((name, v) for v in values))
    # crossing matches on word boundaries inside the name, total_value on a sum: no anchor.
    return _sharpest(parts)


@dataclass(frozen=True)
class RuleIndex:
    """Anchor -> positions of the rules it anchors, and the rules that have no anchor."""

    by_anchor: dict[Anchor, tuple[int, ...]]
    always: tuple[int, ...]
    size: int

    @classmethod
    def build(cls, conditions: Sequence[ReportCondition]) -> RuleIndex:
        by_anchor: dict[Anchor, list[int]] = {}
        always: list[int] = []
        for position, cond in enumerate(conditions):
            anchors = report_anchors(cond)
            if anchors is None:
                always.append(position)
                continue
            for anchor in anchors:
                by_anchor.setdefault(anchor, []).append(position)
        return cls({a: tuple(p) for a, p in by_anchor.items()}, tuple(always), len(conditions))

    def candidates(self, shown: Iterable[Anchor]) -> list[int]:
        """Positions of the rules worth evaluating, in rule order (so alerts keep their order)."""
        found = set(self.always)
        by_anchor = self.by_anchor
        # A report shows dozens of anchors and few of them anchor a rule: intersect first (in C).
        for anchor in by_anchor.keys() & shown:
            found.update(by_anchor[anchor])
        return sorted(found)
