"""The stages of one process, supervised.

FastStream runs the subscribers; the ``Runtime`` here hooks into its life cycle to create the
groups and start the stages before reading, to run each stream's reclaimer, a heartbeat and a
supervisor task, and to finish the work in hand before the process exits. The supervisor
recreates a lost group (NOGROUP after a flush or a restart without persistence), restarts
stopped subscribers, and in ``burst`` mode stops the app once every stage has drained what was
waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from faststream import FastStream

from services import metrics
from services.logging import get_logger
from services.ops.heartbeat import Heartbeat
from services.runtime.contract import Context, Stage
from services.runtime.groups import ensure_group
from services.runtime.worker import StreamWorker


@dataclass
class Runtime:
    """The stages of one process, their subscribers, and the supervisor."""

    ctx: Context
    stages: list[Stage]
    burst: bool = False
    workers: list[StreamWorker] = field(default_factory=list)
    app: FastStream | None = None
    _supervisor: asyncio.Task[None] | None = None
    _reclaimers: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    log: Any = field(default_factory=lambda: get_logger(component="runtime"))
    heartbeat: Heartbeat | None = None
    _heartbeat_task: asyncio.Task[None] | None = None
    metrics_server: metrics.MetricsServer | None = None
    _ready: bool = False
    started: bool = False
    """Set once the app has started: a failure after it is not a failure to start."""

    async def readiness(self) -> tuple[bool, str]:
        if not self._ready:
            return False, "starting" if not self._stop.is_set() else "stopping"
        try:
            await asyncio.wait_for(self.ctx.redis.ping(), 2.0)
        except Exception as error:
            return False, f"server unreachable: {type(error).__name__}"
        return True, "ok"

    async def on_startup(self) -> None:
        s = self.ctx.settings
        if s.metrics_port:
            # Before the stages start, so a probe sees "starting" rather than nothing.
            self.metrics_server = metrics.MetricsServer(s.metrics_host, s.metrics_port, self.readiness)
            await self.metrics_server.start()
            self.log.info("metrics served", url=f"http://{s.metrics_host}:{self.metrics_server.port}/metrics")
        await self.ctx.redis.ping()
        for worker in self.workers:
            await ensure_group(self.ctx.redis, worker.consumes.stream, worker.consumes.group)
        for stage in self.stages:
            await stage.start()
        self.heartbeat = Heartbeat(self.ctx.redis, s, [st.name for st in self.stages])
        for worker in self.workers:
            worker.on_progress = self.heartbeat.progressed
        self.log.info(
            "started",
            stages=[s.name for s in self.stages],
            consumer=self.ctx.settings.consumer,
            burst=self.burst,
        )

    async def after_startup(self) -> None:
        for worker in self.workers:
            for sub in worker.subscribers:
                _keep_app_running_on_nogroup(sub)
        self._reclaimers = [
            asyncio.create_task(w.reclaim_until(self._stop), name=f"{w.stage.name}-reclaimer")
            for w in self.workers
        ]
        self._supervisor = asyncio.create_task(self._supervise(), name="supervisor")
        if self.heartbeat is not None:
            self._heartbeat_task = asyncio.create_task(self.heartbeat.run(self._stop), name="heartbeat")
        self._ready = True
        self.started = True

    async def on_shutdown(self) -> None:
        # FastStream calls this before it stops the broker: stop reading here, at once, and
        # let the batches in hand (readers' and reclaimers') finish and be acked within the
        # grace period. Anything not acked by then stays pending and is reclaimed elsewhere.
        self._ready = False
        grace = self.ctx.settings.shutdown_grace
        self.log.info("stopping", grace_s=grace)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._stop.set()
        readers = [
            asyncio.create_task(sub.stop(), name=f"{w.stage.name}-reader-stop")
            for w in self.workers
            for sub in w.subscribers
            if sub.running
        ]
        in_hand = [*self._reclaimers, *readers]
        if in_hand:
            _, late = await asyncio.wait(in_hand, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                self.log.warning("grace period over: unfinished work stays pending", tasks=len(late))
        if self._heartbeat_task is not None:
            await asyncio.wait([self._heartbeat_task], timeout=5.0)
            self._heartbeat_task.cancel()

    async def after_shutdown(self) -> None:
        # Subscribers have stopped and the work in hand is acked: now the stages finish theirs.
        for stage in self.stages:
            await stage.stop()
        if self.heartbeat is not None:
            await self.heartbeat.clear()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await self.ctx.redis.aclose()
        self.ctx.endpoint.close()
        self.log.info("stopped")

    async def _supervise(self) -> None:
        interval = min(self.ctx.settings.poll_interval, 1.0)
        idle_rounds = 0
        started = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                await self._heal()
                if self.burst:
                    idle_rounds = idle_rounds + 1 if await self._all_idle() else 0
                    # Two idle rounds in a row: nothing in flight between the checks.
                    if idle_rounds >= 2 and self.app is not None:
                        self.log.info("drained", seconds=round(time.monotonic() - started, 3))
                        self.app.exit()
                        return
            except Exception as error:
                self.log.warning("supervisor check failed", error=str(error))

    async def _heal(self) -> None:
        for worker in self.workers:
            if all(sub.running for sub in worker.subscribers):
                continue
            c = worker.consumes
            created = await ensure_group(self.ctx.redis, c.stream, c.group)
            self.log.warning("restarting subscribers", stage=worker.stage.name, group_recreated=created)
            for sub in worker.subscribers:
                if not sub.running:
                    await sub.start()

    async def _all_idle(self) -> bool:
        for stage in self.stages:
            if await stage.busy():
                return False
        for worker in self.workers:
            if not await worker.idle():
                return False
        return True


def _keep_app_running_on_nogroup(subscriber: Any) -> None:
    # FastStream stops the subscriber and exits the whole app when its group is gone. Here a
    # lost group is an event to recover from: stop only this subscriber and let the supervisor
    # recreate the group and restart it.
    async def stop_only(exc: Exception, msg: str) -> None:
        get_logger(component="runtime").warning("consumer group lost", detail=msg)
        await subscriber.stop()

    subscriber._stop_on_terminal_error = stop_only
