"""The alerts the rules stage makes, pinned down: the engine as the stage runs it, on the sample
reports and on the benchmark's reports, with the shipped rules, catalog and rates
(and the shipped example exceptions).

``tests/unit/test_golden_alerts.py`` compares what the code makes now with
``tests/data/golden-alerts.jsonl.gz``, written by the code before the speed work (issue 19), so a
change that makes the stage faster cannot change an alert, an explanation or a held-back rule
unnoticed. After a deliberate change to the rules, the catalog, the engine's wording or the alert
model, write the file again and review its diff:

    .venv/bin/python -m tests.golden_update        # or: TRADEWATCH_GOLDEN_UPDATE=1 pytest tests/unit/test_golden_alerts.py

What is run, as ``services/rules/stage.py`` runs it: each report goes onto the wire as its JSON
(``json.dumps``, as a producer would ``XADD`` it) and is read back with ``decode_report``; it is
examined with the UN sample list loaded for ``party:`` rules; rules over time are decided per batch
of 256 with :class:`MemoryState` (the contract the Redis scripts keep) and settled; each alert is
encoded with ``alert_fields`` (what the stage ``XADD``\\s) and decoded again as plain JSON. Volatile
fields (``created_at``) are left out; everything else is compared, including the order of alerts.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import ReportMaker
from schemas.report import ImportReport
from schemas.streams import ALERT_FIELD, REPORT_FIELD
from services.ingest.sources.article import ArticleSource, Extractor
from services.rules.engine import RuleSet, examine
from services.rules.loader import load_ruleset
from services.rules.temporal import MemoryState, Pending, settle
from services.sanctions.index import ScreeningIndex
from services.sanctions.lists import read_list
from services.wire import Entry, alert_fields, decode_report

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests/data/golden-alerts.jsonl.gz"
SAMPLES = ROOT / "config/samples"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
VOLATILE = ("created_at",)
BATCH = 256
BENCH_REPORTS = 1_000
"""The benchmark's first reports (``ReportMaker(seed=7)``, as ``bench_rules.py`` makes them)."""
REPEATS = 300
"""The first of them again under new ids, when every memo already knows their lines."""

PARTY_REPORTS: list[dict[str, Any]] = [
    {"schema_version": 1, "report_id": "golden-party-1", "source": "customs-cn", "origin_country": "CN",
     "destination_country": "KP", "crossing": "Dandong-Sinuiju", "importer": "Chongchongang Shipping Company",
     "items": [{"description": "used lathe", "hs_code": "8458.11", "quantity": 2}]},
    {"schema_version": 1, "report_id": "golden-party-2", "source": "news", "destination_country": "KP",
     "text": "Korea Ryonha Machinery Joint Venture Corporation took delivery of second-hand excavators at Nampo.",
     "exporter": "Dandong Hongxiang Industrial"},
    {"schema_version": 1, "report_id": "golden-party-3", "source": "partner-feed", "origin_country": "CN",
     "destination_country": "KP", "crossing": "신의주", "importer": "Taedong Credit Bank",
     "items": [{"description": "rice", "hs_code": "1006", "quantity": 100, "unit": "kg"},
               {"description": "二手数控车床", "unit_price": 12000, "currency": "CNY", "quantity": 3}]},
    {"schema_version": 1, "report_id": "golden-exempt-1", "source": "customs-cn", "origin_country": "CN",
     "destination_country": "KP", "crossing": "Changbai-Hyesan", "importer": "Ryanggang Provincial People's Hospital",
     "items": [{"description": "X-ray machine", "quantity": 1}, {"description": "ultrasound scanner"}]},
]  # fmt: skip


def ruleset() -> RuleSet:
    return load_ruleset(
        [ROOT / "config/rules.yaml"],
        ROOT / "config/catalog.yaml",
        ROOT / "config/rates.yaml",
        [ROOT / "config/exceptions.example.yaml"],  # so that held-back rules are pinned down too
    )


def screening() -> ScreeningIndex:
    return ScreeningIndex.build(
        read_list(ROOT / "tests/fixtures/sanctions/un-dprk-sample.xml", "un-sc").entries
    )


def reports(rules: RuleSet) -> Iterator[dict[str, Any]]:
    """Every input report as the JSON a producer would publish."""
    for line in (SAMPLES / "reports.jsonl").read_text("utf-8").splitlines():
        if line.strip():
            yield json.loads(line)
    articles = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".txt", ".html"))
    assert rules.extractor is not None
    source = ArticleSource(Extractor(rules.catalog, rules.rates))
    for path in articles:
        for parsed in source.read(path):  # as ingest reads an article: items and a summary text
            assert isinstance(parsed, ImportReport), parsed
            yield json.loads(parsed.model_dump_json(exclude_none=True))
    for n, path in enumerate(articles):  # as an outside producer posts one: text, no items
        text = path.read_text("utf-8")
        yield {"schema_version": 1, "report_id": f"golden-text-{n}", "source": "news", "text": text}
    yield from PARTY_REPORTS
    maker = ReportMaker(seed=7)
    made = [maker.report(n) for n in range(BENCH_REPORTS)]
    yield from made
    for report in made[:REPEATS]:
        yield {**report, "report_id": "again-" + report["report_id"]}


def produce() -> list[dict[str, Any]]:
    """One line per report: its id, its alerts as on the wire (without ``created_at``), the rules
    an exception held back and the items the catalog did not recognise."""
    rules, index, state = ruleset(), screening(), MemoryState()
    out: list[dict[str, Any]] = []
    inputs = list(reports(rules))
    for start in range(0, len(inputs), BATCH):
        examined = []
        for n, raw in enumerate(inputs[start : start + BATCH], start):
            entry = Entry(f"{n}-0", {REPORT_FIELD.encode(): json.dumps(raw, ensure_ascii=False).encode()})
            report = decode_report(entry)
            facts, verdicts = examine(report, rules, NOW, index)
            examined.append((report, facts, verdicts))
        pending: list[Pending] = [v.pending for _, _, vs in examined for v in vs if v.pending is not None]
        decided = iter([state.decide(p, NOW) for p in pending])
        for report, facts, verdicts in examined:
            alerts = []
            for v in verdicts:
                alert = settle(v.pending, next(decided)) if v.pending is not None else v.alert
                if alert is not None:
                    wire = json.loads(alert_fields(alert)[ALERT_FIELD])
                    for name in VOLATILE:
                        wire.pop(name, None)
                    alerts.append(wire)
            out.append({
                "report_id": report.report_id,
                "alerts": alerts,
                "held_back": [[v.rule_id, v.suppressed_by] for v in verdicts if v.suppressed_by],
                "unrecognised": list(facts.unrecognised),
            })  # fmt: skip
    return out


def dump(lines: list[dict[str, Any]]) -> bytes:
    text = "".join(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n" for line in lines)
    return gzip.compress(text.encode("utf-8"), mtime=0)


def load(path: Path = GOLDEN) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()]


def write(path: Path = GOLDEN) -> int:
    lines = produce()
    path.write_bytes(dump(lines))
    return len(lines)
