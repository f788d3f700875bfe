"""Each worker's heartbeat, and a watchdog that notices a stalled pipeline.

Every ``heartbeat_interval`` a worker writes ``<ns>:heartbeat:<consumer>`` (JSON: stages, host,
pid, time of the beat and of its last finished batch) with a TTL of three intervals, and
records its name in the sorted set ``<ns>:workers`` so that ``tradewatch status`` finds every
live worker without a SCAN over the whole keyspace. The beat runs on the worker's event loop: a
worker whose loop is blocked stops beating and its key expires.

The same loop runs the watchdog: it reads the groups (see :mod:`services.ops.status`), sets the
``tradewatch_pipeline_stalled`` gauge, logs an error when a group becomes stalled and, when
``stall_alert_url`` is set, tells that Apprise URL once per ``stall_after`` across all workers.
A pipeline whose every worker is dead has nobody left to watch it: alert on the heartbeat
metric's absence in Prometheus for that case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Sequence

import redis.asyncio as aredis

from services import metrics
from services.logging import get_logger
from services.ops.status import GroupInfo, snapshot
from services.redact import redact, register_secret
from services.settings import Settings

WORKER_SET_RETENTION = 86_400.0
"""Names in ``<ns>:workers`` older than this are pruned (their heartbeat keys expired long ago)."""


class Heartbeat:
    def __init__(self, redis: aredis.Redis, settings: Settings, stages: Sequence[str]) -> None:
        self.redis = redis
        self.settings = settings
        self.stages = list(stages)
        self.progress_at: float | None = None
        self.stalled: set[str] = set()
        self.log = get_logger(component="heartbeat")
        names = settings.streams
        self.key = names.key("heartbeat", settings.consumer)
        self.workers_key = names.key("workers")
        if settings.stall_alert_url is not None:
            register_secret(settings.stall_alert_url.get_secret_value())

    def progressed(self) -> None:
        self.progress_at = time.time()

    async def beat(self) -> None:
        now = time.time()
        value = json.dumps({
            "consumer": self.settings.consumer,
            "stages": self.stages,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": now,
            "progress_at": self.progress_at,
        })  # fmt: skip
        ttl = max(1, int(self.settings.heartbeat_interval * 3 + 0.999))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key, value, ex=ttl)
            pipe.zadd(self.workers_key, {self.settings.consumer: now})
            pipe.zremrangebyscore(self.workers_key, "-inf", now - WORKER_SET_RETENTION)
            await pipe.execute()
        metrics.HEARTBEAT.set(now)

    async def watch(self) -> list[GroupInfo]:
        """Judge every group once; returns the groups that became stalled just now."""
        snap = await snapshot(self.redis, self.settings, with_workers=False, with_sanctions=False)
        newly = []
        for group in snap.groups:
            label = f"{group.stream}/{group.group}"
            if group.lag is not None:
                metrics.GROUP_LAG.labels(label).set(group.lag)
            metrics.GROUP_PENDING.labels(label).set(group.pending)
            metrics.STALLED.labels(label).set(1 if group.stalled else 0)
            if group.stalled and label not in self.stalled:
                newly.append(group)
                self.stalled.add(label)
                self.log.error("pipeline stalled", group=label, reason=group.stall_reason)
                await self._alert(label, group.stall_reason)
            elif not group.stalled and label in self.stalled:
                self.stalled.discard(label)
                self.log.info("pipeline moving again", group=label)
        return newly

    async def _alert(self, label: str, reason: str) -> None:
        url = self.settings.stall_alert_url
        if url is None:
            return
        # One alert per stall across every worker watching the same group.
        claim = self.settings.streams.key("stall-alerted", label)
        if not await self.redis.set(
            claim, self.settings.consumer, nx=True, ex=int(self.settings.stall_after)
        ):
            return
        import apprise

        bundle = apprise.Apprise()
        bundle.add(url.get_secret_value())
        title = f"tradewatch: pipeline stalled ({self.settings.namespace})"
        try:
            ok = bool(await bundle.async_notify(title=title, body=f"{label}: {reason}"))
        except Exception as error:
            ok = False
            self.log.warning("stall alert failed", error=redact(f"{type(error).__name__}: {error}"))
        self.log.info("stall alert sent" if ok else "stall alert not delivered", group=label)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.beat()
                await self.watch()
            except Exception as error:
                # A server restart or a dropped connection: beat again next round.
                metrics.REDIS_ERRORS.labels("heartbeat").inc()
                self.log.warning("heartbeat failed", error=str(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.heartbeat_interval)

    async def clear(self) -> None:
        """A clean exit removes the key at once, so status does not show a ghost for three beats."""
        with contextlib.suppress(Exception):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(self.key)
                pipe.zrem(self.workers_key, self.settings.consumer)
                await pipe.execute()
