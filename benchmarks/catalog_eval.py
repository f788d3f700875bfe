"""Measured quality of the item catalog: precision and recall against a labelled set.

    make eval-items                             # both sets against config/catalog.yaml
    python -m benchmarks.catalog_eval [--catalog FILE] [--json]
    python -m benchmarks.catalog_eval --labelled FILE    # one set only, with the main set's targets

Two sets: ``labelled-items.jsonl`` (written beside the catalog, which was tuned on it: its
figures are an upper bound) and ``labelled-items-holdout.jsonl``, the held-out set. Its first 61
descriptions were written after the catalog and not tuned on (apart from one general change to
how a description's words are ranked); the next 83 (parts and components, welding consumables,
metal articles by heading, two-way radios and broadcast receivers, notable words naming an
everyday good) were written and committed before the catalog was widened for those goods, and
the widening was done on the main set's new lines, not on these. Keep it that way: add what the
held-out set teaches to the main set, then fix the catalog.

Each labelled line: ``text`` (an item description as ledgers and traders write it), ``lang``,
``category`` (the category an analyst would give it, or null), optional ``also`` (other categories
that are right too: ``dual-use``, ``luxury-goods``, ``shipyard-equipment``...) and ``hs`` (the HS
prefix that is right, or null when no code is).

What is measured, for each description run through ``Catalog.classify(text, None)``:

- **Categories.** Expected: ``category`` + ``also`` + the umbrella of the expected HS chapter
  (84-85 industrial-machinery, 86-87 vehicles, 88 aircraft, 89 vessels, 72-83 metals), a fixed
  table here, not the catalog's. Per category: true positives (expected and given), false
  positives (given, not expected), false negatives (expected, not given). "Notable" categories are
  every category outside the catalog's ``everyday`` list; overall figures are micro-averaged over
  them.
- **Flagging.** An item is notable when any expected category is notable, flagged when any given
  category is. Recall: notable items flagged. Precision: flagged items that are notable. Every
  everyday item flagged is listed.
- **HS codes** (prefix agreement). Right when the code given starts with the expected prefix (as
  specific as the label, or more). Recall: right codes among items with an expected prefix;
  precision: right codes among items given a code. Per category by the expected ``category``.

- **HS heading accuracy**: the share of descriptions whose code agrees with the label at
  heading level (the first 4 digits; a label of a chapter only, on its 2), a description
  labelled with no code being right when none is given. It is the figure a reviewer reads first:
  the heading says what a good is, the subheading often needs facts a ledger line leaves out.

The targets (issue 3): recall and precision >= 0.95 for notable categories, for flagging and for
HS codes on the main set; HS heading accuracy >= 0.9 on the held-out set. Everyday items
flagged are listed first, each one a reason to fix the catalog.
``tests/unit/test_catalog_quality.py`` asserts the targets; exit status 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.goods.catalog import Catalog, load_catalog

ROOT = Path(__file__).resolve().parents[1]
LABELLED = ROOT / "tests/data/labelled-items.jsonl"
HOLDOUT = ROOT / "tests/data/labelled-items-holdout.jsonl"
CATALOG = ROOT / "config/catalog.yaml"
TARGET = 0.95
HOLDOUT_HEADING_TARGET = 0.9
"""HS accuracy at heading level (4 digits) the held-out set must reach."""

_UMBRELLA = {"84": "industrial-machinery", "85": "industrial-machinery", "86": "vehicles"}
_UMBRELLA |= {"87": "vehicles", "88": "aircraft", "89": "vessels"}
_UMBRELLA |= {str(chapter): "metals" for chapter in range(72, 84)}


@dataclass(frozen=True)
class Labelled:
    line: int
    text: str
    lang: str
    category: str | None
    also: tuple[str, ...]
    hs: str | None

    @property
    def expected(self) -> frozenset[str]:
        cats = {*self.also, *([self.category] if self.category else [])}
        if self.hs and self.hs[:2] in _UMBRELLA:
            cats.add(_UMBRELLA[self.hs[:2]])
        return frozenset(cats)


def load_labelled(path: Path = LABELLED) -> list[Labelled]:
    out = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        row = json.loads(raw)
        unknown = set(row) - {"text", "lang", "category", "also", "hs"}
        if unknown:
            raise ValueError(f"{path}:{number}: unknown fields {sorted(unknown)}")
        out.append(
            Labelled(number, row["text"], row["lang"], row["category"], tuple(row.get("also", ())), row["hs"])
        )
    return out


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Miss:
    line: int
    text: str
    expected: list[str]
    given: list[str]
    expected_hs: str | None
    given_hs: str | None
    evidence: list[str]


@dataclass
class Report:
    items: int
    languages: dict[str, int]
    categories: dict[str, Counts] = field(default_factory=dict)
    notable: Counts = field(default_factory=Counts)
    everyday_cats: Counts = field(default_factory=Counts)
    flagging: Counts = field(default_factory=Counts)
    hs: dict[str, Counts] = field(default_factory=dict)
    hs_all: Counts = field(default_factory=Counts)
    heading_right: int = 0
    everyday_flagged: list[Miss] = field(default_factory=list)
    category_misses: list[Miss] = field(default_factory=list)
    hs_misses: list[Miss] = field(default_factory=list)

    @property
    def heading_accuracy(self) -> float:
        """Descriptions whose code agrees with the label at heading level, over all of them."""
        return self.heading_right / self.items if self.items else 1.0

    def heading_target_met(self, target: float = HOLDOUT_HEADING_TARGET) -> list[str]:
        accuracy = self.heading_accuracy
        return [] if accuracy >= target else [f"HS heading accuracy {accuracy:.3f} < {target}"]

    def targets_met(self) -> list[str]:
        """Every target that does not hold, in words; empty when all hold."""
        failed = []
        for name, value in (
            ("category recall (notable)", self.notable.recall),
            ("category precision (notable)", self.notable.precision),
            ("flagging recall", self.flagging.recall),
            ("flagging precision", self.flagging.precision),
            ("HS recall", self.hs_all.recall),
            ("HS precision", self.hs_all.precision),
        ):
            if value < TARGET:
                failed.append(f"{name} {value:.3f} < {TARGET}")
        return failed


def evaluate(catalog: Catalog, labelled: list[Labelled]) -> Report:
    everyday = set(catalog.file.everyday)
    report = Report(len(labelled), dict(Counter(row.lang for row in labelled)))
    for row in labelled:
        result = catalog.classify(row.text, None)
        given, expected = set(result.categories), set(row.expected)
        miss = Miss(
            row.line,
            row.text,
            sorted(expected),
            sorted(given),
            row.hs,
            result.hs_code,
            list(result.evidence),
        )
        for cat in given | expected:
            counts = report.categories.setdefault(cat, Counts())
            total = report.everyday_cats if cat in everyday else report.notable
            if cat in given and cat in expected:
                counts.tp += 1
                total.tp += 1
            elif cat in given:
                counts.fp += 1
                total.fp += 1
            else:
                counts.fn += 1
                total.fn += 1
        if given != expected:
            report.category_misses.append(miss)
        is_notable, is_flagged = bool(expected - everyday), bool(given - everyday)
        if is_notable and is_flagged:
            report.flagging.tp += 1
        elif is_flagged:
            report.flagging.fp += 1
            report.everyday_flagged.append(miss)
        elif is_notable:
            report.flagging.fn += 1
        group = report.hs.setdefault(row.category or "(none)", Counts())
        right = bool(row.hs and result.hs_code and result.hs_code.startswith(row.hs))
        for counts in (group, report.hs_all):
            if right:
                counts.tp += 1
            else:
                if result.hs_code:
                    counts.fp += 1
                if row.hs:
                    counts.fn += 1
        if not right and (row.hs or result.hs_code):
            report.hs_misses.append(miss)
        if same_heading(row.hs, result.hs_code):
            report.heading_right += 1
    return report


def same_heading(expected: str | None, given: str | None) -> bool:
    """The code given agrees with the label at heading level (a chapter label: at chapter level)."""
    if expected is None or given is None:
        return expected == given
    width = min(4, len(expected))
    return given[:width] == expected[:width]


def render(report: Report, everyday: set[str]) -> str:
    langs = ", ".join(f"{k} {v}" for k, v in sorted(report.languages.items()))
    lines = [f"labelled items: {report.items} ({langs})", ""]
    lines.append(
        f"{'category':<26}{'precision':>10}{'recall':>8}{'tp':>6}{'fp':>5}{'fn':>5}   HS precision / recall"
    )
    for cat in sorted(report.categories, key=lambda c: (c in everyday, c)):
        c = report.categories[cat]
        h = report.hs.get(cat)
        hs_text = f"   {h.precision:.3f} / {h.recall:.3f}" if h else ""
        mark = " (everyday)" if cat in everyday else ""
        lines.append(
            f"{cat + mark:<26}{c.precision:>10.3f}{c.recall:>8.3f}{c.tp:>6}{c.fp:>5}{c.fn:>5}{hs_text}"
        )
    lines.append("")
    for name, c in (
        ("categories, notable (micro)", report.notable),
        ("categories, everyday (micro)", report.everyday_cats),
        ("flagging (notable or not)", report.flagging),
        ("HS prefix agreement", report.hs_all),
    ):
        lines.append(
            f"{name:<30} precision {c.precision:.3f}  recall {c.recall:.3f}  (tp {c.tp}, fp {c.fp}, fn {c.fn})"
        )
    lines.append(
        f"{'HS heading accuracy':<30} {report.heading_accuracy:.3f}  ({report.heading_right} of {report.items})"
    )
    lines.append(f"everyday items flagged: {len(report.everyday_flagged)}")

    def show(title: str, misses: list[Miss]) -> None:
        lines.append("")
        lines.append(f"{title}: {len(misses)}")
        for m in misses:
            lines.append(f"  line {m.line}: {m.text}")
            lines.append(f"      expected {m.expected} HS {m.expected_hs}; given {m.given} HS {m.given_hs}")
            lines.extend(f"      - {e}" for e in m.evidence)

    show("everyday items flagged", report.everyday_flagged)
    show("category misclassified", report.category_misses)
    show("HS code wrong or missing", report.hs_misses)
    return "\n".join(lines)


def figures(report: Report) -> dict[str, object]:
    """One set's figures as a JSON document."""
    counts = {
        name: {"precision": c.precision, "recall": c.recall, "tp": c.tp, "fp": c.fp, "fn": c.fn}
        for name, c in (
            ("categories", report.notable),
            ("flagging", report.flagging),
            ("hs", report.hs_all),
            *((f"category:{k}", v) for k, v in sorted(report.categories.items())),
        )
    }
    return {"items": report.items, "hs_heading_accuracy": report.heading_accuracy, "figures": counts}


def summary(sets: list[tuple[str, Report, list[str]]]) -> str:
    """The headline figures of every set side by side, and the targets each misses."""
    rows: list[tuple[str, Callable[[Report], str]]] = [
        ("items", lambda r: f"{r.items}"),
        ("categories precision (notable)", lambda r: f"{r.notable.precision:.3f}"),
        ("categories recall (notable)", lambda r: f"{r.notable.recall:.3f}"),
        ("flagging precision", lambda r: f"{r.flagging.precision:.3f}"),
        ("flagging recall", lambda r: f"{r.flagging.recall:.3f}"),
        ("HS precision (prefix)", lambda r: f"{r.hs_all.precision:.3f}"),
        ("HS recall (prefix)", lambda r: f"{r.hs_all.recall:.3f}"),
        ("HS heading accuracy", lambda r: f"{r.heading_accuracy:.3f}"),
        ("everyday items flagged", lambda r: f"{len(r.everyday_flagged)}"),
    ]
    lines = [f"{'':<32}" + "".join(f"{name:>14}" for name, _, _ in sets)]
    lines += [f"{label:<32}" + "".join(f"{show(r):>14}" for _, r, _ in sets) for label, show in rows]
    lines.append("")
    for name, _, failed in sets:
        lines.append(f"{name}: " + ("targets met" if not failed else "TARGETS NOT MET: " + "; ".join(failed)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--labelled", type=Path, help="one set only, measured against the main targets")
    parser.add_argument("--catalog", type=Path, default=CATALOG)
    parser.add_argument("--json", action="store_true", help="figures as one JSON document")
    args = parser.parse_args(argv)
    catalog = load_catalog(args.catalog)
    sets: list[tuple[str, Report, list[str]]] = []
    if args.labelled is not None:
        report = evaluate(catalog, load_labelled(args.labelled))
        sets.append((args.labelled.name, report, report.targets_met()))
    else:
        main_set = evaluate(catalog, load_labelled(LABELLED))
        held_out = evaluate(catalog, load_labelled(HOLDOUT))
        sets.append(("main", main_set, main_set.targets_met()))
        sets.append(("held-out", held_out, held_out.heading_target_met()))
    if args.json:
        print(json.dumps({name: {**figures(r), "failed": failed} for name, r, failed in sets}))
    else:
        everyday = set(catalog.file.everyday)
        for name, report, _ in sets:
            print(f"==== {name} set")
            print(render(report, everyday))
            print()
        print("==== both sets" if len(sets) > 1 else "==== figures")
        print(summary(sets))
    return 1 if any(failed for _, _, failed in sets) else 0


if __name__ == "__main__":
    sys.exit(main())
