"""One crossing however it is written: rules, keys and surge counts see the catalog's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.report import ImportReport
from services.goods.catalog import Catalog, parse_catalog
from services.rules.engine import evaluate, explain
from services.yamlfile import ConfigError, parse
from tests.helpers import CATALOG_FILE, NOW, rules_from


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("Dandong-Sinuiju", "Dandong-Sinuiju"),
        ("丹东-新义州", "Dandong-Sinuiju"),
        ("신의주", "Dandong-Sinuiju"),
        ("Hunchun-Rason", "Hunchun-Rason (Wonjong-ri)"),
        ("圈河口岸", "Hunchun-Rason (Wonjong-ri)"),
        ("혜산", "Changbai-Hyesan"),
        ("Namyang", "Namyang"),  # not in the catalog: kept as written
    ],
)
def test_crossing_names(catalog: Catalog, written: str, name: str) -> None:
    assert catalog.crossing_name(written) == name


def test_two_crossings_in_one_field_stay_as_written(catalog: Catalog) -> None:
    assert catalog.crossing_name("Dandong and Hyesan") == "Dandong and Hyesan"


def test_a_term_claimed_by_two_crossings_is_refused() -> None:
    text = CATALOG_FILE.read_text(encoding="utf-8") + "  Other:\n    en: [Dandong]\n"
    with pytest.raises(
        ConfigError, match="crossing term 'Dandong' of 'Other' already names 'Dandong-Sinuiju'"
    ):
        parse_catalog(parse(text, "catalog.yaml"))


def test_rules_keys_and_surges_see_one_crossing(tmp_path: Path) -> None:
    ruleset = rules_from(
        tmp_path,
        """version: 1
rules:
  - id: at-sinuiju
    title: At Sinuiju
    severity: low
    legal_basis: test
    when: {all: [{crossing: [신의주]}, {item: {hs: ["84"]}}]}
    group_by: [crossing]
  - id: surge
    title: Surge
    severity: high
    legal_basis: test
    when: {item: {hs: ["84"]}}
    frequency: {count: 3, window: 7d, per: [crossing]}
""",
    )
    written = ["Dandong-Sinuiju", "丹东-新义州", "단둥"]
    reports = [
        ImportReport(report_id=f"r{n}", source="t", crossing=c, items=[{"description": "lathe"}])
        for n, c in enumerate(written)
    ]
    alerts = [a for r in reports for a in evaluate(r, ruleset, NOW)]
    assert {a.rule_id for a in alerts} == {"at-sinuiju"}
    assert {a.crossing for a in alerts} == {"Dandong-Sinuiju"}
    assert len({a.group_key for a in alerts}) == 1
    surge_keys = {v.pending.group for r in reports for v in explain(r, ruleset, NOW) if v.pending is not None}
    assert len(surge_keys) == 1


def test_an_exception_for_a_crossing_covers_every_way_of_writing_it(tmp_path: Path) -> None:
    ruleset = rules_from(
        tmp_path,
        """version: 1
rules:
  - id: lathes
    title: Lathes
    severity: low
    legal_basis: test
    when: {item: {hs: ["8458"]}}
    exceptions:
      - {id: licensed-route, reason: licensed, crossing: [신의주]}
""",
    )
    for crossing, fires in (("Dandong-Sinuiju", False), ("丹东", False), ("Hyesan", True)):
        report = ImportReport(report_id="r", source="t", crossing=crossing, items=[{"description": "lathe"}])
        assert bool(evaluate(report, ruleset, NOW)) is fires, crossing
