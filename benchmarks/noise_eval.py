"""Noise, measured: what an analyst receives for the samples and the original news report.

    make eval-noise
    python -m benchmarks.noise_eval [--json]

Every sample report (``config/samples/reports.jsonl``), every sample article and the original
news report (``../shared/domain/dailynk-2026-03-machinery-imports.txt``, read as an article; left
out with a note where ``../shared`` is absent) goes through the shipped rule pack and catalog with
the production engine, and the notifier's case builder and routing with the shipped
subscriptions. Printed per report: alerts (one per rule, the stream's contract), cases and
findings (what a person reads); then messages per subscription, one message per subscription,
channel and group, as the notifier opens them when the reports arrive within a group wait.

The target (issue: what the analyst receives): the original news report gives one case. Exit
status 1 when it does not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from schemas.alert import Alert
from schemas.report import ImportReport
from services.cases import cases_of
from services.ingest.sources import Parsed, Rejection
from services.ingest.sources.article import ArticleSource, Extractor
from services.money import load_rates
from services.notify.plan import bucket_for
from services.notify.subscriptions import load_subscriptions
from services.rules.engine import evaluate
from services.rules.loader import load_from_settings
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "config/samples"
NEWS = ROOT.parent / "shared/domain/dailynk-2026-03-machinery-imports.txt"
NOW = datetime(2026, 3, 10, tzinfo=UTC)


@dataclass
class Line:
    name: str
    alerts: list[Alert]

    @property
    def cases(self) -> int:
        return len(cases_of(self.alerts))

    @property
    def findings(self) -> list[int]:
        return [len(c.findings) for c in cases_of(self.alerts)]


def reports(settings: Settings) -> list[tuple[str, ImportReport]]:
    found = [
        (f"sample {r.report_id}", r)
        for r in (ImportReport.model_validate_json(line) for line in _lines(SAMPLES / "reports.jsonl"))
    ]
    extractor = Extractor(load_from_settings(settings).catalog, load_rates(settings.rates_file))
    articles = sorted(p for p in SAMPLES.glob("article-*") if p.is_file())
    if NEWS.exists():
        articles.append(NEWS)
    for path in articles:
        for parsed in ArticleSource(extractor, "article").read(path):
            found.append((f"article {path.name}", _report(parsed, path)))
    return found


def _report(parsed: Parsed, path: Path) -> ImportReport:
    if isinstance(parsed, Rejection):
        raise SystemExit(f"{path}: rejected: {parsed.reason}")
    assert isinstance(parsed, ImportReport)
    return parsed


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    args = parser.parse_args()
    settings = Settings(rules_files=[ROOT / "config/rules.yaml"], catalog_file=ROOT / "config/catalog.yaml")
    ruleset = load_from_settings(settings)
    lines = [Line(name, evaluate(report, ruleset, NOW)) for name, report in reports(settings)]
    subscriptions = load_subscriptions(ROOT / "config/subscriptions.yaml")
    messages: Counter[str] = Counter()
    for sub in subscriptions:
        buckets = {bucket_for(sub, a) for line in lines for a in line.alerts if sub.wants(a)}
        messages[sub.name] = len(buckets) * len(sub.channels)
    alerted = [line for line in lines if line.alerts]
    findings = [f for line in alerted for f in line.findings]
    news = next((line for line in lines if NEWS.name in line.name), None)
    summary = {
        "reports": len(lines),
        "alerts": sum(len(line.alerts) for line in lines),
        "cases": sum(line.cases for line in lines),
        "alerts_per_report": round(statistics.mean(len(line.alerts) for line in lines), 2),
        "findings_per_case": round(statistics.mean(findings), 2) if findings else 0,
        "findings_per_case_max": max(findings, default=0),
        "messages_per_subscription": dict(messages),
        "news_report_cases": news.cases if news else None,
    }
    if args.json:
        print(json.dumps({"reports": [_row(line) for line in lines], "summary": summary}, indent=2))
    else:
        print(f"{'report':<58} {'alerts':>6} {'cases':>5} {'findings':>8}")
        for line in lines:
            row = _row(line)
            print(f"{line.name[:58]:<58} {row['alerts']:>6} {row['cases']:>5} {row['findings']!s:>8}")
        print()
        for key, value in summary.items():
            print(f"{key}: {value}")
        if news is None:
            print(
                f"note: {NEWS} is absent (../shared is not beside this checkout): the news report was not fed"
            )
    if news is not None and news.cases != 1:
        print(f"FAIL: the original news report gave {news.cases} cases, not 1", file=sys.stderr)
        return 1
    return 0


def _row(line: Line) -> dict[str, object]:
    return {"report": line.name, "alerts": len(line.alerts), "cases": line.cases, "findings": line.findings}


if __name__ == "__main__":
    sys.exit(main())
