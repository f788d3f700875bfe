"""Prometheus metrics and the health and readiness endpoints of a worker.

The metrics live in one registry per process (``REGISTRY``) so that a test can read them back.
They are served by a tiny asyncio HTTP server on ``metrics_host:metrics_port`` (port 0: off):

- ``/metrics``: the Prometheus text format;
- ``/healthz``: 200 while the event loop answers (a blocked loop answers nothing, which is the
  point: a worker stuck on a full pipe is not healthy);
- ``/readyz``: 200 once the stages started and the server answered the last ping, else 503.

It runs on the worker's own loop rather than prometheus-client's thread for that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES_IN = Counter(
    "tradewatch_messages_in_total", "Stream entries a stage received", ["stage"], registry=REGISTRY
)
MESSAGES_OUT = Counter(
    "tradewatch_messages_out_total",
    "Stream entries a stage handled and acked",
    ["stage"],
    registry=REGISTRY,
)
MESSAGES_FAILED = Counter(
    "tradewatch_messages_failed_total",
    "Stream entries whose handling raised (left pending, retried later)",
    ["stage"],
    registry=REGISTRY,
)
HANDLE_SECONDS = Histogram(
    "tradewatch_handle_seconds",
    "Time to handle one batch of entries, store its effect and ack it",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
SKIPPED = Counter(
    "tradewatch_messages_skipped_total",
    "Malformed stream entries a stage acked without a dead letter, since another group of the same "
    "stream dead-letters them (the archive: the rules stage does)",
    ["stage"],
    registry=REGISTRY,
)
ALERTS = Counter("tradewatch_alerts_total", "Alerts published", ["rule", "severity"], registry=REGISTRY)
DELIVERIES = Counter(
    "tradewatch_deliveries_total",
    "Messages sent to channels, by outcome (sent; failed, to be retried; dead, given up)",
    ["channel", "outcome"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "tradewatch_retries_total",
    "Entries handled again after an earlier delivery failed or its consumer died",
    ["stage"],
    registry=REGISTRY,
)
RECLAIMED = Counter(
    "tradewatch_reclaimed_total",
    "Entries claimed from idle consumers (XAUTOCLAIM)",
    ["stage"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "tradewatch_dead_letters_total",
    "Entries moved to a dead-letter stream",
    ["stage"],
    registry=REGISTRY,
)
NOT_OURS = Counter(
    "tradewatch_not_owned_total",
    "Entries whose effect was dropped because another consumer had reclaimed them",
    ["stage"],
    registry=REGISTRY,
)
UNRECOGNISED_ITEMS = Counter(
    "tradewatch_unrecognised_items_total",
    "Report items the catalog could not classify (no HS code given, no catalog term in the words)",
    registry=REGISTRY,
)
HEARTBEAT = Gauge(
    "tradewatch_heartbeat_timestamp_seconds",
    "Unix time of this worker's last heartbeat (a stale value means a stalled worker)",
    registry=REGISTRY,
)
LAST_PROGRESS = Gauge(
    "tradewatch_last_progress_timestamp_seconds",
    "Unix time a stage last finished handling a batch",
    ["stage"],
    registry=REGISTRY,
)
GROUP_LAG = Gauge("tradewatch_group_lag", "Entries not yet read by the group", ["group"], registry=REGISTRY)
GROUP_PENDING = Gauge(
    "tradewatch_group_pending", "Entries read and not yet acked", ["group"], registry=REGISTRY
)
STALLED = Gauge(
    "tradewatch_pipeline_stalled",
    "1 when the group has work waiting and nobody reading or reclaiming it",
    ["group"],
    registry=REGISTRY,
)
REDIS_ERRORS = Counter(
    "tradewatch_redis_errors_total",
    "Failed server round trips in the runtime's own loops (ridden out with backoff)",
    ["component"],
    registry=REGISTRY,
)


def render() -> bytes:
    return generate_latest(REGISTRY)


Readiness = Callable[[], Awaitable[tuple[bool, str]]]


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on one loopback port, on the worker's own loop."""

    def __init__(self, host: str, port: int, ready: Readiness) -> None:
        self.host = host
        self.port = port
        self.ready = ready
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            # Headers are read and ignored: every answer is the same whoever asks.
            while (line := await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                del line
            parts = request.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else "/"
            status, content_type, body = await self._answer(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, path: str) -> tuple[str, str, bytes]:
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, render()
        if path == "/healthz":
            return "200 OK", "application/json", b'{"status": "ok"}'
        if path == "/readyz":
            ok, detail = await self.ready()
            body = json.dumps({"status": "ready" if ok else "not ready", "detail": detail}).encode()
            return ("200 OK" if ok else "503 Service Unavailable"), "application/json", body
        return "404 Not Found", "text/plain", b"not found: try /metrics, /healthz, /readyz\n"
