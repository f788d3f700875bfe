"""What every benchmark shares: a fresh loopback server, realistic reports and rules, a group
monitor that times a drain from outside the consumers, and process memory from /proc.

Reports are generated from the catalog's terms (English, Chinese, Korean) and the facts of the
March 2026 news report (crossings, second-hand and disassembled machinery, shipyard gear,
X-ray machines, tractors priced in CNY, technicians); rules from what analysts write: HS
headings and subheadings, categories, words in three languages, countries, crossings.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import yaml

from services import server
from services.goods.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "config/catalog.yaml"

CROSSINGS = ["Dandong-Sinuiju", "Hunchun-Rason", "Changbai-Hyesan", "Nampo port", "Tumen-Namyang"]
"""Crossings reports name: the catalog's three, and two it does not know (reports may say anything)."""
RULE_CROSSINGS = CROSSINGS[:3]
"""Crossings a rule may name: only the catalog's (``rules check`` refuses any other)."""
IMPORTERS = [
    "a North Korean trading company", "Korea Ryonbong General Corporation", "Sinuiju Trading Co",
    "Rason Economic Trade Zone Co", "Pyongyang Machinery Import Corp", "Chongjin Fisheries Co",
]  # fmt: skip
EXPORTERS = ["Dandong Hongxiang Industrial", "Hunchun Border Trade Co", "Liaoning Machinery Export", None]
SOURCES = ["customs-cn", "partner-feed", "news", "field-report"]
TEXTS = {
    "en": [
        "Chinese technicians travelled in to assist with setup.",
        "Trucks were seen loading at the bridge before dawn.",
        "The cargo was declared as spare parts.",
        "Local traders say the goods were ordered by a state enterprise.",
    ],
    "zh": ["中国技术人员入境协助安装。", "货物以零部件名义申报。", "据当地商人说，这批货物由国营企业订购。"],
    "ko": ["중국 기술자들이 설치를 돕기 위해 입국했다.", "화물은 부품으로 신고되었다.", "국영기업이 주문한 물품이라고 한다."],
}  # fmt: skip
MARKERS = {
    "en": ["second-hand", "used", "disassembled", "brand new", "refurbished", ""],
    "zh": ["二手", "散件", "全新", ""],
    "ko": ["중고", "분해", "신품", ""],
}
FILLERS = {"en": "for a {} workshop", "zh": "用于{}车间", "ko": "{} 공장용"}
PLACES = {
    "en": ["shipyard", "factory", "farm", "mine"],
    "zh": ["船厂", "工厂", "农场"],
    "ko": ["조선소", "공장", "농장"],
}
CONSUMER = [("rice", "1006"), ("flour", "1101"), ("cooking oil", "1507"), ("textbooks", "4901")]


def catalog_terms() -> list[tuple[str, str, str, list[str]]]:
    """(language, term, hs, categories) for every item term of the catalog."""
    catalog = load_catalog(CATALOG)
    terms: list[tuple[str, str, str, list[str]]] = []
    for item in catalog.file.items:
        for lang, term in item.all():
            terms.append((lang, term, item.hs, list(item.categories)))
    return terms


class ReportMaker:
    """Reports with several items each, in three languages, most of them to the DPRK."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.terms = catalog_terms()
        self.by_lang: dict[str, list[tuple[str, str, str, list[str]]]] = {}
        for t in self.terms:
            self.by_lang.setdefault(t[0], []).append(t)

    def item(self, lang: str) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.1:
            name, hs = rng.choice(CONSUMER)
            return {"description": name, "hs_code": hs, "quantity": rng.randint(10, 5000), "unit": "kg"}
        _, term, hs, _ = rng.choice(self.by_lang[lang])
        marker = rng.choice(MARKERS[lang])
        words = [marker, term] if marker else [term]
        if rng.random() < 0.4:
            words.append(FILLERS[lang].format(rng.choice(PLACES[lang])))
        item: dict[str, Any] = {"description": " ".join(words)}
        if rng.random() < 0.45:  # customs data declares codes, dotted or not
            code = hs.ljust(6, "0")[:6] if len(hs) < 6 else hs
            item["hs_code"] = f"{code[:4]}.{code[4:]}" if rng.random() < 0.5 else code
        if rng.random() < 0.6:
            item["quantity"] = rng.randint(1, 200)
        if rng.random() < 0.4:
            item["unit_price"] = round(rng.uniform(200, 250_000), 2)
            item["currency"] = rng.choice(["CNY", "USD", "EUR"])
        if rng.random() < 0.2:
            item["condition"] = rng.choice(["used", "new"])
        if rng.random() < 0.1:
            item["disassembled"] = True
        return item

    def report(self, n: int, prefix: str = "bench") -> dict[str, Any]:
        rng = self.rng
        lang = rng.choices(["en", "zh", "ko"], weights=[6, 3, 2])[0]
        report: dict[str, Any] = {
            "schema_version": 1,
            "report_id": f"{prefix}-{n}",
            "source": rng.choice(SOURCES),
            "reported_at": f"2026-03-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
            "origin_country": "CN",
            "destination_country": "KP" if rng.random() < 0.85 else rng.choice(["VN", "RU", "MN"]),
            "crossing": rng.choice(CROSSINGS),
            "importer": rng.choice(IMPORTERS),
            "items": [self.item(lang) for _ in range(rng.randint(2, 6))],
        }
        if exporter := rng.choice(EXPORTERS):
            report["exporter"] = exporter
        if rng.random() < 0.5:
            report["text"] = rng.choice(TEXTS[lang])
        return report


REPEATED_LINES = 500
"""Distinct item lines in the ``repeat`` variant of the rules benchmark (customs tables repeat theirs)."""


def repeating_reports(n: int, distinct: int = REPEATED_LINES, seed: int = 7) -> Iterator[dict[str, Any]]:
    """The benchmark's reports with every item drawn from the first ``distinct`` item lines made:
    as in customs tables, where the same goods come back under the same description line."""
    maker = ReportMaker(seed=seed)
    pool: list[dict[str, Any]] = []
    while len(pool) < distinct:
        pool.extend(maker.report(len(pool), prefix="pool")["items"])
    pool = pool[:distinct]
    for i in range(n):
        report = maker.report(i)
        report["items"] = [maker.rng.choice(pool) for _ in report["items"]]
        yield report


def generated_rules(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """Rules as analysts write them: watch lists of HS subheadings, categories by crossing,
    words in three languages, price thresholds; each anchored on something a report must show."""
    rng = random.Random(seed)
    terms = catalog_terms()
    catalog = load_catalog(CATALOG)
    categories = sorted(catalog.categories)
    rules = []
    for i in range(n):
        kind = i % 5
        hs = f"{rng.choice(range(72, 98)):02d}{rng.randint(1, 99):02d}{rng.randint(0, 99):02d}"
        if kind == 0:  # a watch list of subheadings
            codes = [
                f"{rng.choice(range(72, 98)):02d}{rng.randint(1, 99):02d}{rng.randint(0, 99):02d}"
                for _ in range(3)
            ]
            when: dict[str, Any] = {"all": [{"destination_country": ["KP"]}, {"item": {"hs": codes}}]}
        elif kind == 1:  # a heading, second-hand only, via one crossing
            when = {"all": [
                {"crossing": [rng.choice(RULE_CROSSINGS)]},
                {"item": {"hs": [hs[:4]], "condition": ["used"]}},
            ]}  # fmt: skip
        elif kind == 2:  # words in any language, with a country
            _, term, _, _ = rng.choice(terms)
            when = {"all": [{"origin_country": ["CN"]}, {"words": [f"{term} model {i}"]}]}
        elif kind == 3:  # a category, above a price
            when = {"all": [
                {"destination_country": ["KP"]},
                {"item": {"categories": [rng.choice(categories)], "hs": [hs],
                          "unit_price": {"gte": rng.randint(1_000, 90_000), "currency": "USD"}}},
            ]}  # fmt: skip
        else:  # a range of subheadings
            low = int(hs)
            when = {"item": {"hs": [f"{low:06d}-{min(low + rng.randint(1, 20), 979999):06d}"]}}
        rules.append({
            "id": f"gen-{i}", "title": f"Generated watch rule {i}", "severity": rng.choice(["low", "medium", "high"]),
            "tags": ["generated"], "legal_basis": "UNSCR 2397 (2017) OP7 (benchmark)", "when": when,
        })  # fmt: skip
    return rules


def write_rules(path: Path, n: int) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "rules": generated_rules(n)}, allow_unicode=True), "utf-8")
    return path


@contextlib.contextmanager
def fresh_server(appendonly: bool = False) -> Iterator[str]:
    """A new server on a free loopback port, gone afterwards; or TRADEWATCH_BENCH_REDIS_URL."""
    if url := os.environ.get("TRADEWATCH_BENCH_REDIS_URL"):
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="twbench-") as tmp:
        local = server.LocalServer(Path(tmp), appendonly=appendonly)
        local.start()
        try:
            yield local.url
        finally:
            local.stop()


def preload(url: str, stream: str, reports: Iterator[dict[str, Any]], field: str = "report") -> int:
    client = redis.Redis.from_url(url)
    n = 0
    pipe = client.pipeline(transaction=False)
    for report in reports:
        pipe.xadd(stream, {field: json.dumps(report, ensure_ascii=False)})
        n += 1
        if n % 1000 == 0:
            pipe.execute()
    pipe.execute()
    client.close()
    return n


@dataclass
class Drain:
    seconds: float
    entries: int

    @property
    def rate(self) -> float:
        return self.entries / self.seconds if self.seconds > 0 else 0.0


def group_progress(client: redis.Redis, stream: str, group: str) -> tuple[int, int] | None:
    """(entries read by the group, entries still pending); None before the group exists."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None
    for info in groups:
        if info["name"] in (group, group.encode()):
            return int(info.get("entries-read") or 0), int(info["pending"])
    return None


def alerts_of(body: bytes) -> list[dict[str, Any]]:
    """The alerts a JSON webhook received: at the top of the payload, beside the cases; or, as
    checkouts before cases sent them, in a JSON document encoded in ``message``. ValueError,
    KeyError or TypeError for anything else."""
    payload = json.loads(body)
    if "alerts" in payload:
        return list(payload["alerts"])
    return list(json.loads(payload["message"])["alerts"])


def watch_drain(
    url: str,
    streams: list[str],
    group: str,
    total: int,
    timeout: float = 600,
    workers: Sequence[subprocess.Popen[bytes]] = (),
) -> Drain:
    """Time from the group's first read to the last entry acked, seen from outside (every 10 ms).
    Fails at once when every worker has exited before the drain (a worker refusing to start)."""
    client = redis.Redis.from_url(url)
    started: float | None = None
    idle_at = time.perf_counter()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            read = pending = 0
            for stream in streams:
                progress = group_progress(client, stream, group)
                if progress is not None:
                    read += progress[0]
                    pending += progress[1]
            now = time.perf_counter()
            if read == 0:
                idle_at = now
            elif started is None:
                started = idle_at  # the last look that saw nothing read: no drain is timed as 0
            if started is not None and read >= total and pending == 0:
                return Drain(now - started, total)
            if workers and all(w.poll() is not None for w in workers):
                codes = [w.returncode for w in workers]
                raise RuntimeError(f"the {group} workers exited {codes} with {read} of {total} entries read")
            time.sleep(0.01)
    finally:
        client.close()
    raise TimeoutError(f"{group} did not drain {total} entries within {timeout}s")


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process in KiB (VmHWM: its peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_env(url: str, namespace: str, data_dir: Path, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "TRADEWATCH_REDIS_URL": url,
        "TRADEWATCH_NAMESPACE": namespace,
        "TRADEWATCH_DATA_DIR": str(data_dir),
        "TRADEWATCH_LOG_FORMAT": "json",
        # An ingest worker's HTTP endpoint on any free port: never 8087, which a pipeline running
        # beside the benchmark (make run) may hold.
        "TRADEWATCH_HTTP_PORT": "0",
        "TRADEWATCH_RULES_RELOAD_INTERVAL": "0",
        "TRADEWATCH_CATALOG_FILE": str(ROOT / "config/catalog.yaml"),
        "TRADEWATCH_RATES_FILE": str(ROOT / "config/rates.yaml"),
        **more,
    }


def spawn(args: list[str], env: dict[str, str], log: Path, checkout: Path = ROOT) -> subprocess.Popen[bytes]:
    """A process of ``checkout`` (this one by default; another, e.g. ``git worktree add``, for a
    before/after comparison in the same run), its stderr appended to ``log``."""
    if checkout != ROOT:
        env = {**env, "PYTHONPATH": str(checkout)}
    with log.open("ab") as handle:
        return subprocess.Popen(args, env=env, cwd=checkout, stdout=subprocess.DEVNULL, stderr=handle)


def tradewatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", *args]


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "server": server.find_server_binary().name,
        "load_average_at_start": [round(x, 2) for x in load],
    }


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
