"""The catalog's measured quality holds, and it points only at HS codes that exist."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from benchmarks.catalog_eval import (
    HOLDOUT,
    HOLDOUT_HEADING_TARGET,
    LABELLED,
    TARGET,
    evaluate,
    load_labelled,
    same_heading,
)
from services.goods.catalog import Catalog
from tests.helpers import shared_file


def test_holdout_set_is_well_formed_and_apart(catalog: Catalog) -> None:
    """Written before the catalog was tuned for its goods and never tuned on (see make eval-items)."""
    holdout = load_labelled(HOLDOUT)
    assert len(holdout) >= 140
    assert {row.lang for row in holdout} == {"en", "zh", "ko"}
    assert not {row.text for row in holdout} & {row.text for row in load_labelled(LABELLED)}
    for row in holdout:
        assert all(cat in catalog.categories for cat in row.expected), row
        assert row.hs is None or (row.hs.isdigit() and len(row.hs) in (2, 4, 6)), row


def test_holdout_hs_headings_hold(catalog: Catalog) -> None:
    report = evaluate(catalog, load_labelled(HOLDOUT))
    assert report.heading_accuracy >= HOLDOUT_HEADING_TARGET, report.heading_accuracy
    assert report.heading_target_met() == []


def test_heading_agreement() -> None:
    assert same_heading("8458", "845811")
    assert same_heading("845811", "845819")  # the heading agrees; the subheading is not asked
    assert not same_heading("8458", "84")
    assert same_heading("72", "7210")  # a chapter label agrees at chapter level
    assert same_heading(None, None)
    assert not same_heading(None, "8701")
    assert not same_heading("8701", None)


def test_labelled_set_is_large_varied_and_well_formed(catalog: Catalog) -> None:
    labelled = load_labelled(LABELLED)
    assert len(labelled) >= 250
    langs = Counter(row.lang for row in labelled)
    assert set(langs) == {"en", "zh", "ko"}
    assert min(langs.values()) >= 50, langs
    texts = [row.text for row in labelled]
    assert len(set(texts)) == len(texts), "a description is labelled twice"
    for row in labelled:
        for cat in row.expected:
            assert cat in catalog.categories, f"line {row.line}: unknown category {cat!r}"
        assert row.hs is None or (row.hs.isdigit() and len(row.hs) in (2, 4, 6)), row
    wanted = {
        "agricultural-machinery", "construction-machinery", "machine-tools", "shipyard-equipment",
        "medical-devices", "radio-telecom", "vehicles", "vessels", "metals", "luxury-goods",
        "dual-use", "food", "medicine", "clothing", "household-goods",
    }  # fmt: skip
    have = Counter(row.category for row in labelled)
    thin = {cat: have[cat] for cat in wanted if have[cat] < 5}
    assert not thin, f"categories with fewer than 5 labelled items: {thin}"
    assert sum(1 for row in labelled if not (row.expected - set(catalog.file.everyday))) >= 60


def test_quality_targets_hold(catalog: Catalog) -> None:
    report = evaluate(catalog, load_labelled(LABELLED))
    assert report.notable.recall >= TARGET
    assert report.notable.precision >= TARGET
    assert report.flagging.recall >= TARGET
    assert report.flagging.precision >= TARGET
    assert report.hs_all.recall >= TARGET
    assert report.hs_all.precision >= TARGET
    assert report.targets_met() == []


def test_evaluation_counts_what_it_claims(catalog: Catalog, tmp_path: Path) -> None:
    """A tiny set with one known error of each kind gives exactly the figures worked out by hand."""
    rows = [
        {"text": "lathe", "lang": "en", "category": "machine-tools", "hs": "8458"},
        {"text": "rice", "lang": "en", "category": "food", "hs": "1006"},
        # wrong label on purpose: a tractor labelled as a vessel with a vessel code
        {"text": "tractor", "lang": "en", "category": "vessels", "hs": "89"},
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    report = evaluate(catalog, load_labelled(path))
    assert (report.flagging.tp, report.flagging.fp, report.flagging.fn) == (2, 0, 0)
    assert report.categories["vessels"].fn == 1
    assert report.categories["agricultural-machinery"].fp == 1
    assert (report.hs_all.tp, report.hs_all.fp, report.hs_all.fn) == (2, 1, 1)
    assert [m.text for m in report.hs_misses] == ["tractor"]
    assert report.targets_met()  # the planted error misses the targets


def test_every_hs_code_in_the_catalog_exists_in_hs_2022(catalog: Catalog) -> None:
    path = shared_file("data", "hs2022.csv")
    with path.open(encoding="utf-8-sig", newline="") as f:
        known = {row["hscode"] for row in csv.DictReader(f)}
    assert {"01", "8474", "847431"} <= known  # the file is what we think it is
    used = {f"items[{item.id}].hs": item.hs for item in catalog.file.items}
    used |= {f"hs[{code}]": code for code in catalog.file.hs}
    used |= {f"parts_headings[{code}]": code for code in catalog.file.parts_headings}
    used |= {f"parts_headings[{code}] ->": to for code, to in catalog.file.parts_headings.items()}
    missing = {
        where: code for where, code in used.items() if (code if len(code) <= 6 else code[:6]) not in known
    }
    assert not missing, f"HS codes not in the HS 2022 nomenclature: {missing}"
