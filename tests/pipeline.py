"""Helpers for tests that run stages for real: in-process apps in burst mode, a JSON receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from services import runtime, server
from services.settings import Settings


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
