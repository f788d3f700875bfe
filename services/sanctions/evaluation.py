"""Precision and recall of party screening on a labelled set of name variants, overall and by group
(Latin, Hangul, Chinese, vessels)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from schemas.base import StrictModel
from services.sanctions.index import PARTY_KINDS, ScreeningIndex

Group = Literal["latin", "hangul", "chinese", "vessel"]
GROUPS: tuple[Group, ...] = ("latin", "hangul", "chinese", "vessel")


class Variant(StrictModel):
    name: str
    expect: str | None
    kind: Literal["variant", "near-miss", "unrelated"]
    group: Group = "latin"
    imo: str | None = None


class VariantSet(StrictModel):
    variants: list[Variant]


def load_variants(path: Path) -> list[Variant]:
    return VariantSet.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))).variants


@dataclass
class Scores:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    comparisons: int = 0
    queries: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0

    def add(self, other: Scores) -> None:
        self.true_positives += other.true_positives
        self.false_positives += other.false_positives
        self.false_negatives += other.false_negatives
        self.comparisons += other.comparisons
        self.queries += other.queries
        self.errors += other.errors


def score_variants(
    index: ScreeningIndex, variants: Sequence[Variant], min_score: float, lists: Sequence[str]
) -> Scores:
    """Every listed entry found for a name is a hit: the expected one is a true positive, any
    other a false positive; an expected entry not found is a false negative. Names are screened as
    a report's parties are (against everything listed but vessels), vessels as a report's vessel
    is (IMO number first, then the name among listed vessels)."""
    scores = Scores()
    for variant in variants:
        if variant.group == "vessel":
            search = index.search_vessel(variant.name, variant.imo, min_score, lists)
        else:
            search = index.search(variant.name, min_score, lists, PARTY_KINDS)
        scores.queries += 1
        scores.comparisons += search.comparisons
        found = {m.entry.reference: m for m in search.matches}
        label = variant.name + (f" [{variant.imo}]" if variant.imo else "")
        if variant.expect is not None:
            if variant.expect in found:
                scores.true_positives += 1
            else:
                scores.false_negatives += 1
                scores.errors.append(f"missed    {label!r} (expected {variant.expect})")
        for reference, match in found.items():
            if reference != variant.expect:
                scores.false_positives += 1
                scores.errors.append(
                    f"wrong hit {label!r} ({variant.kind}) -> {reference} {match.entry.name} "
                    f"via {match.matched_alias!r}, score {match.score:.2f}"
                )
    return scores


def score_groups(
    index: ScreeningIndex, variants: Sequence[Variant], min_score: float, lists: Sequence[str]
) -> dict[str, Scores]:
    """Scores per group, and ``overall``."""
    out: dict[str, Scores] = {}
    overall = Scores()
    for group in GROUPS:
        chosen = [v for v in variants if v.group == group]
        if chosen:
            out[group] = score_variants(index, chosen, min_score, lists)
            overall.add(out[group])
    out["overall"] = overall
    return out
