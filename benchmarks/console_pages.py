"""How fast the console answers with a store that has seen a year of work.

Seeds an SQLite store with N cases (the sample reports' alerts, copied under new report ids,
spread over 52 weeks and the three crossings, a third of them closed), then asks the console
in-process (httpx over ASGI, no network) for its pages, each ``--rounds`` times, and prints the
median time per page beside the median of ``/healthz`` in the same run (the floor: what any
request through the application costs). Ratios, not absolute times: machines differ.

    python -m benchmarks.console_pages [--cases 5000] [--rounds 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from schemas.alert import Alert
from schemas.report import ImportReport
from services.casework import users
from services.casework.records import record_alerts
from services.console.app import build_console, create_app
from services.rules.engine import evaluate
from services.rules.loader import load_ruleset
from services.server import client, resolve
from services.settings import DEFAULT_CASE_DUE, Settings
from services.store import Store
from services.store.migrate import upgrade
from services.store.models import Case

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "benchmark password"
CROSSINGS = ["Dandong-Sinuiju", "Hunchun-Rason (Wonjong-ri)", "Changbai-Hyesan"]


def sample_alerts() -> list[list[Alert]]:
    ruleset = load_ruleset(
        [ROOT / "config/rules.yaml"], ROOT / "config/catalog.yaml", ROOT / "config/rates.yaml"
    )
    now = datetime(2026, 3, 6, 10, tzinfo=UTC)
    found = []
    for line in (ROOT / "config/samples/reports.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip() and (alerts := evaluate(ImportReport.model_validate_json(line), ruleset, now)):
            found.append(alerts)
    return found


async def seed(store: Store, n: int) -> None:
    await upgrade(store)
    await users.bootstrap_admin(store)
    await users.set_password(store, "admin", "admin", PASSWORD)
    templates = sample_alerts()
    rng = random.Random(7)
    batch: list[Alert] = []
    for i in range(n):
        crossing = rng.choice(CROSSINGS)
        for alert in templates[i % len(templates)]:
            rid = f"bench-{i:06d}"
            batch.append(
                alert.model_copy(
                    update={"report_id": rid, "alert_id": f"{alert.alert_id}-{i}", "crossing": crossing}
                )
            )
        if len(batch) >= 2_000:
            async with store.writing() as session:
                await record_alerts(session, batch, DEFAULT_CASE_DUE)
            batch = []
    if batch:
        async with store.writing() as session:
            await record_alerts(session, batch, DEFAULT_CASE_DUE)
    # Spread the cases over a year and close a third, as a store in use looks.
    now = datetime.now(UTC)
    async with store.writing() as session:
        for case_id in range(1, n + 1):
            opened = now - timedelta(days=rng.uniform(0, 365))
            values: dict[str, Any] = {"opened_at": opened, "due_at": opened + timedelta(days=3)}
            if case_id % 3 == 0:
                values |= {
                    "state": "closed",
                    "outcome": rng.choice(["false_positive", "violation"]),
                    "closed_at": opened,
                }
            await session.execute(update(Case).where(Case.id == case_id).values(**values))


async def measure(n: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), namespace=f"bench-console-{time.time_ns()}")
        store = Store(f"sqlite:///{tmp}/store.db")
        started = time.perf_counter()
        await seed(store, n)
        seeded = time.perf_counter() - started
        endpoint = resolve(settings)
        redis = client(endpoint)
        app = create_app(build_console(settings, store, redis))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            pages = {
                "/healthz (floor)": "/healthz",
                "inbox": "/",
                "inbox, filtered": "/?state=open,in_review&severity=critical&crossing=Dandong-Sinuiju",
                "inbox, by category": "/?category=machine-tools&sort=opened",
                "inbox, page 40": "/?page=40",
                "case": "/cases/7",
                "rules": "/rules",
                "dashboard": "/dashboard",
                "api cases": "/api/cases?size=200",
            }
            form = await http.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token is not None
            login = await http.post(
                "/login", data={"csrf": token.group(1), "name": "admin", "password": PASSWORD}
            )
            assert login.status_code == 303, login.text
            figures: dict[str, float] = {}
            for name, path in pages.items():
                times = []
                for _ in range(rounds):
                    t = time.perf_counter()
                    r = await http.get(path)
                    times.append(time.perf_counter() - t)
                    assert r.status_code == 200, (path, r.status_code, r.text[:300])
                figures[name] = statistics.median(times)
        await redis.aclose()
        endpoint.close()
        await store.dispose()
    floor = figures["/healthz (floor)"]
    return {
        "cases": n,
        "seeded_s": round(seeded, 1),
        "median_ms": {k: round(v * 1000, 1) for k, v in figures.items()},
        "times_floor": {k: round(v / floor, 1) for k, v in figures.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(measure(args.cases, args.rounds))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['cases']} cases (seeded in {result['seeded_s']} s); median of {args.rounds} requests each:"
    )
    for name, ms in result["median_ms"].items():
        print(f"  {name:<24} {ms:>8.1f} ms  {result['times_floor'][name]:>7.1f}x the floor")


if __name__ == "__main__":
    main()
