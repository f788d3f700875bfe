"""The floors a stage is measured against, each as its own process:

- ``raw``: a plain redis-py loop, XREADGROUP (batch) -> json.loads each entry -> one XACK;
- ``noop``: tradewatch's own reader (a FastStream batch subscriber, AckPolicy.MANUAL, the
  runtime's supervisor, burst mode) with a stage that only acks what it is given.

``python -m benchmarks.floors raw|noop URL NAMESPACE BATCH``
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

import redis

from services import runtime, server
from services.runtime import Consumes, Context
from services.settings import Settings
from services.wire import Entry


def raw_loop(url: str, stream: str, group: str, batch: int) -> None:
    client = redis.Redis.from_url(url)
    while True:
        reply: Any = client.xreadgroup(group, "raw", {stream: ">"}, count=batch, block=200)
        if not reply:
            return
        entries = reply[0][1]
        for _, fields in entries:
            json.loads(fields[b"report"])
        client.xack(stream, group, *[i for i, _ in entries])


class NoopStage:
    name = "noop"

    def __init__(self, ctx: Context, consumes: Consumes) -> None:
        self.ctx = ctx
        self.partitions = [consumes]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def busy(self) -> bool:
        return False

    async def handle(self, batch: Sequence[Entry], consumes: Consumes) -> None:
        await self.ctx.redis.xack(consumes.stream, consumes.group, *[e.id for e in batch])


def noop(url: str, namespace: str, batch: int) -> None:
    settings = Settings(redis_url=url, namespace=namespace, batch_size=batch, poll_interval=0.05)
    endpoint = server.resolve(settings)
    ctx = Context(settings, endpoint, server.client(endpoint))
    names = settings.streams
    stage = NoopStage(ctx, Consumes(names.reports, "rules", names.reports_dead))
    app = runtime.build(settings, [stage], ctx, burst=True)
    asyncio.run(app.run())


def main(argv: list[str]) -> None:
    kind, url, namespace, batch = argv[0], argv[1], argv[2], int(argv[3])
    if kind == "raw":
        raw_loop(url, f"{namespace}:reports", "rules", batch)
    else:
        noop(url, namespace, batch)


if __name__ == "__main__":
    main(sys.argv[1:])
