"""Plain helpers for every tier: paths, the fixed clock, builders, and waiting for a condition.

Fixtures live in the conftest.py files; this module holds what tests import. It needs no
server: the unit tier imports it too.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from schemas.alert import Alert, MatchedItem, Severity
from schemas.report import ImportReport
from services.rules.engine import RuleSet
from services.rules.loader import load_ruleset

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

CATALOG_FILE = ROOT / "config/catalog.yaml"
RATES_FILE = ROOT / "config/rates.yaml"
RULES_FILE = ROOT / "config/rules.yaml"  # the shipped rule pack

SANCTIONS_FIXTURES = ROOT / "tests" / "fixtures" / "sanctions"
SAMPLE_XML = SANCTIONS_FIXTURES / "un-dprk-sample.xml"
SAMPLE_CSV = SANCTIONS_FIXTURES / "opensanctions-sample.csv"

NOW = datetime(2026, 3, 10, tzinfo=UTC)

# How long a test waits for something that must happen: far longer than it takes on an idle
# machine (a fraction of a second), so that a loaded one only makes the test slower, never red.
WAIT = 60.0


def shared_file(*parts: str) -> Path:
    """A file under ../shared, or skip: a user's fresh clone has no ../shared."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared (the team's domain data) is not beside this checkout")
    return path


def make_report(report_id: str = "r1", **fields: object) -> ImportReport:
    """A report to the DPRK from the source ``test``; any field can be given or replaced."""
    base: dict[str, object] = {"report_id": report_id, "source": "test", "destination_country": "KP"}
    return ImportReport.model_validate(base | fields)


def make_alert(**overrides: object) -> Alert:
    """A critical shipyard alert at Hunchun-Rason for report r-1; any field can be replaced."""
    base: dict[str, object] = {
        "alert_id": "a-1", "rule_id": "shipyard-equipment", "rule_version": "v1", "severity": Severity.CRITICAL,
        "report_id": "r-1", "title": "Shipyard equipment to the DPRK", "summary": "CNC cutting machines",
        "matched_items": [MatchedItem(index=0, description="CNC cutting machine <b>", hs_code="8456", categories=["machine-tools"], evidence=["category shipyard-equipment"])],
        "legal_basis": "UNSCR 2397 OP7", "tags": ["shipyard"], "created_at": datetime(2026, 3, 1, tzinfo=UTC),
        "crossing": "Hunchun-Rason", "destination_country": "KP", "dedup_key": "k", "group_key": "g",
    }  # fmt: skip
    return Alert.model_validate(base | overrides)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rules_from(tmp_path: Path, rules_yaml: str, exception_files: tuple[Path, ...] = ()) -> RuleSet:
    """A rule file written to ``tmp_path/rules.yaml``, loaded with the shipped catalog and rates."""
    return load_ruleset(
        [write(tmp_path, "rules.yaml", rules_yaml)], CATALOG_FILE, RATES_FILE, exception_files
    )


def examples(full: int) -> int:
    """How many examples a property test tries: ``full`` in the full run; a fifth (at least 10)
    under the ``fast`` Hypothesis profile, which ``make test-fast`` selects."""
    if hypothesis_settings.get_current_profile_name() == "fast":
        return max(10, full // 5)
    return full


def wait_until(predicate: Callable[[], object], timeout: float = WAIT, interval: float = 0.05) -> bool:
    """True as soon as ``predicate()`` is true; False if it never was within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


async def until(
    predicate: Callable[[], object | Awaitable[object]], timeout: float = WAIT, interval: float = 0.05
) -> bool:
    """``wait_until`` for a test's event loop: the loop runs on between checks. The predicate may
    be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
