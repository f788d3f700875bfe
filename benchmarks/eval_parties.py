"""Precision and recall of party screening on the labelled name variants (``make eval-parties``).

    python benchmarks/eval_parties.py [--list FILE] [--min-score 0.9]

Runs against the real UN list of 2020-03-20 in ../shared/data when it is there, else against
the small list the tests ship (tests/fixtures/sanctions/un-dprk-sample.xml, on the pairs whose
listed entry it has), and says which; beside it benchmarks/data/eval-extra.ftm.json (persons and
vessels the 2020 UN list lacks, companies listed in Hangul only). Prints precision and recall
overall and per group: Latin variants, Hangul, Chinese, vessels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from services.sanctions.evaluation import GROUPS, load_variants, score_groups
from services.sanctions.index import ScreeningIndex
from services.sanctions.lists import read_list

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "un-sc-consolidated-2020-03-20.xml"
FIXTURE = ROOT / "tests" / "fixtures" / "sanctions" / "un-dprk-sample.xml"
EXTRA = ROOT / "benchmarks" / "data" / "eval-extra.ftm.json"
LISTS = ("un-dprk", "eval-extra")
SHIPPED_THRESHOLD = 0.9  # config/rules.yaml's party rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", type=Path, default=REAL if REAL.exists() else FIXTURE)
    parser.add_argument("--variants", type=Path, default=ROOT / "benchmarks" / "party_variants.yaml")
    parser.add_argument("--min-score", type=float, default=SHIPPED_THRESHOLD, help="as in the rule pack")
    parser.add_argument("--quiet", action="store_true", help="figures only, not every miss and wrong hit")
    args = parser.parse_args()

    un = read_list(args.list, "un-sc")
    extra = read_list(EXTRA, "eval-extra")
    index = ScreeningIndex.build([*un.entries, *extra.entries])
    variants = load_variants(args.variants)
    known = {e.reference for e in index.entries}
    skipped = [v for v in variants if v.expect is not None and v.expect not in known]
    variants = [v for v in variants if v not in skipped]
    scores = score_groups(index, variants, args.min_score, LISTS)
    print(f"party screening eval: {args.variants.relative_to(ROOT)}")
    print(
        f"  lists     {args.list} ({len(un.entries)} records) + {EXTRA.relative_to(ROOT)} ({len(extra.entries)})"
    )
    print(f"            {len(index.names)} names indexed; screened against: {', '.join(LISTS)}")
    if skipped:
        print(f"  skipped   {len(skipped)} pairs whose listed entry this list lacks")
    print(f"  min_score {args.min_score}")
    print(
        f"  {'group':<8} {'pairs':>5} {'precision':>9} {'recall':>7} {'hits':>5} {'wrong':>5} {'missed':>6} {'cmp/name':>8}"
    )
    for group in (*GROUPS, "overall"):
        if group not in scores:
            continue
        s = scores[group]
        print(
            f"  {group:<8} {s.queries:>5} {s.precision:>9.3f} {s.recall:>7.3f} {s.true_positives:>5} "
            f"{s.false_positives:>5} {s.false_negatives:>6} {s.comparisons / max(1, s.queries):>8.1f}"
        )
    if not args.quiet:
        for error in scores["overall"].errors:
            print(f"    {error}")


if __name__ == "__main__":
    main()
