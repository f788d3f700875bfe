"""Precision and recall of party screening on the labelled name variants (``make eval-parties``).

    python benchmarks/eval_parties.py [--list FILE] [--min-score 0.9]

Runs against the real UN list of 2020-03-20 in ../shared/data when it is there, else against
the small list the tests ship (tests/fixtures/sanctions/un-dprk-sample.xml), and says which.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from services.sanctions.evaluation import load_variants, score_variants
from services.sanctions.index import ScreeningIndex
from services.sanctions.lists import read_list

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "un-sc-consolidated-2020-03-20.xml"
FIXTURE = ROOT / "tests" / "fixtures" / "sanctions" / "un-dprk-sample.xml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", type=Path, default=REAL if REAL.exists() else FIXTURE)
    parser.add_argument("--variants", type=Path, default=ROOT / "benchmarks" / "party_variants.yaml")
    parser.add_argument("--min-score", type=float, default=0.9, help="as in the rule pack's party rule")
    args = parser.parse_args()

    parsed = read_list(args.list, "un-sc")
    index = ScreeningIndex.build(parsed.entries)
    variants = load_variants(args.variants)
    scores = score_variants(index, variants, args.min_score, ["un-dprk"])
    kinds = {k: sum(1 for v in variants if v.kind == k) for k in ("variant", "near-miss", "unrelated")}
    print(f"party screening eval: {args.variants.relative_to(ROOT)}")
    print(
        f"  list      {args.list} ({len(parsed.entries)} records, {len(index.names)} names; lists: un-dprk)"
    )
    print(f"  set       {len(variants)} names: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    print(f"  min_score {args.min_score}")
    print(
        f"  precision {scores.precision:.3f}  ({scores.true_positives} true hits, "
        f"{scores.false_positives} wrong hits)"
    )
    print(f"  recall    {scores.recall:.3f}  ({scores.false_negatives} missed)")
    print(f"  comparisons per name {scores.comparisons / scores.queries:.1f}")
    for error in scores.errors:
        print(f"    {error}")


if __name__ == "__main__":
    main()
