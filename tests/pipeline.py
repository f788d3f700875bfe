"""Helpers for tests that run stages for real: in-process apps in burst mode, channel and
subscription files, a JSON receiver, worker processes' environment, what the streams hold."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from schemas.alert import Alert, MatchedItem, Severity
from schemas.streams import StreamNames
from services import runtime, server
from services.settings import Settings
from tests.helpers import ROOT

# Retries and group waits of a fraction of a second, for tests of delivery.
QUICK_NOTIFY = {"notify_retry_base": 0.05, "notify_retry_max": 0.2, "notify_group_wait": 0.0}


def redis_cli(needed_for: str) -> str:
    """``redis-cli`` or ``valkey-cli`` from PATH; where neither is, the test is skipped."""
    for name in ("redis-cli", "valkey-cli"):
        if found := shutil.which(name):
            return found
    pytest.skip(f"neither redis-cli nor valkey-cli is on PATH: {needed_for} needs one")


def new_context(settings: Settings) -> runtime.Context:
    endpoint = server.resolve(settings)
    return runtime.Context(settings, endpoint, server.client(endpoint))


async def run_burst(settings: Settings, make_stages: Any, timeout: float = 60) -> None:
    """Run stages (``make_stages(ctx) -> list``) until everything waiting is handled."""
    ctx = new_context(settings)
    app = runtime.build(settings, make_stages(ctx), ctx, burst=True)
    await asyncio.wait_for(app.run(), timeout)


def write_channels(path: Path, urls: Sequence[tuple[str, str]]) -> Path:
    lines = ["version: 1", "urls:"]
    for url, tags in urls:
        lines += [f"  - {url}:", f"      - tag: {tags}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_subscriptions(path: Path, body: str | None = None) -> Path:
    path.write_text(
        body or "version: 1\nsubscriptions:\n  - name: team\n    channels: [hook]\n    min_severity: info\n",
        encoding="utf-8",
    )
    return path


def with_channels(
    settings: Settings,
    tmp_path: Path,
    urls: Sequence[tuple[str, str]],
    subscriptions: str | None = None,
    **update: Any,
) -> Settings:
    """The settings with a channels file of (Apprise URL, tag) pairs and a subscriptions file
    (one subscription, ``team``, on the tag ``hook``, unless given), and any other changes."""
    return settings.model_copy(update={
        "channels_file": write_channels(tmp_path / "channels.yaml", urls),
        "subscriptions_file": write_subscriptions(tmp_path / "subscriptions.yaml", subscriptions),
        **update,
    })  # fmt: skip


def quick_notify(
    settings: Settings,
    tmp_path: Path,
    urls: Sequence[tuple[str, str]],
    subscriptions: str | None = None,
    **update: Any,
) -> Settings:
    """``with_channels``, with retries and group waits of a fraction of a second."""
    return with_channels(settings, tmp_path, urls, subscriptions, **QUICK_NOTIFY | update)


def worker_env(settings: Settings, **update: str) -> dict[str, str]:
    """The environment of a ``tradewatch`` process (run from ROOT) that works as ``settings`` say:
    server, namespace, data folder and configuration files, a short poll, JSON logs, any port
    free for HTTP, and ``TRADEWATCH_<NAME>`` for each further setting. Nothing of the caller's
    own ``TRADEWATCH_*`` environment leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWATCH_")}
    given = {
        "redis_url": settings.redis_url.get_secret_value() if settings.redis_url else "",
        "namespace": settings.namespace,
        "data_dir": str(settings.data_dir),
        "catalog_file": str(settings.catalog_file),
        "rules_files": ",".join(str(p) for p in settings.rules_files),
        "rates_file": str(settings.rates_file),
        "channels_file": str(settings.channels_file),
        "subscriptions_file": str(settings.subscriptions_file),
        "poll_interval": "0.2",
        "log_format": "json",
        "http_port": "0",
        "console_port": "0",
    }
    env.update({f"TRADEWATCH_{name.upper()}": value for name, value in (given | update).items()})
    return env


class Receiver:
    """Collects what Apprise's json:// channel posts; can be told to fail the next N requests."""

    def __init__(self, httpserver: HTTPServer, path: str = "/hook") -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail_next = 0
        self.path = path
        httpserver.expect_request(path, method="POST").respond_with_handler(self._handle)
        self.url = f"json://127.0.0.1:{httpserver.port}{path}"

    def _handle(self, request: Request) -> Response:
        if self.fail_next > 0:
            self.fail_next -= 1
            return Response("unavailable", status=503)
        self.messages.append(json.loads(request.get_data()))
        return Response("ok", status=200)

    def alert_ids(self) -> list[str]:
        return [a["alert_id"] for m in self.messages for a in m["alerts"]]


# ---------------------------------------------------------------- what the streams hold


def published_reports(raw: redis.Redis, names: StreamNames) -> list[dict[str, Any]]:
    return [json.loads(f[b"report"]) for _, f in raw.xrange(names.reports)]


def rejected(raw: redis.Redis, names: StreamNames) -> list[dict[str, str]]:
    """The entries of the rejected stream, their fields as text."""
    return [
        {k.decode(): v.decode("utf-8", "replace") for k, v in f.items()}
        for _, f in raw.xrange(names.reports_rejected)
    ]


# ---------------------------------------------------------------- alerts for the notifier


def numbered_alert(n: int, **overrides: Any) -> Alert:
    """Alert ``a-000n``: a high machinery alert at Dandong-Sinuiju for report ``r-000n``."""
    fields: dict[str, Any] = {
        "alert_id": f"a-{n:04d}", "rule_id": "unscr2397-machinery", "rule_version": "v1",
        "severity": Severity.HIGH, "report_id": f"r-{n:04d}", "title": "Industrial machinery to the DPRK",
        "summary": f"lathe {n}", "legal_basis": "UNSCR 2397 (2017) OP7", "created_at": datetime(2026, 3, 6, tzinfo=UTC),
        "crossing": "Dandong-Sinuiju", "destination_country": "KP", "source": "test",
        "matched_items": [MatchedItem(index=0, description=f"lathe {n}", hs_code="8458.11", categories=["machine-tools"])],
        "dedup_key": f"unscr2397-machinery|r-{n:04d}", "group_key": f"r-{n:04d}",
    }  # fmt: skip
    return Alert.model_validate(fields | overrides)


def publish_alerts(raw: redis.Redis, s: Settings, alerts: list[Alert]) -> None:
    with raw.pipeline() as pipe:
        for a in alerts:
            pipe.xadd(s.streams.alerts, {"alert": a.model_dump_json()})
        pipe.execute()


def delivery_history(raw: redis.Redis, s: Settings, alert_id: str) -> list[dict[str, Any]]:
    """The notifier's record of one alert: queued, failed, sent, silenced, dead ..."""
    return [json.loads(e) for e in raw.lrange(s.streams.key("notify", "history", alert_id), 0, -1)]


async def run_cli(settings: Settings, *args: str, **extra_env: str) -> tuple[int, str, str]:
    """The real ``tradewatch`` command, as an operator runs it (stdout not a terminal: JSON)."""
    env = {**worker_env(settings), **extra_env}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return int(proc.returncode or 0), out.decode(), err.decode()
