"""How a stage runs: FastStream subscribers on Redis consumer groups, supervised.

Each stage that consumes a stream gets, in its group:
- a *reader*, a FastStream batch subscriber (XREADGROUP, ``batch_size`` entries) for new entries;
- a *reclaimer* task (XAUTOCLAIM after ``reclaim_idle``, ``batch_size`` at a time) for entries a
  crashed or stalled consumer left pending: FastStream never redelivers a failed stream message
  by itself, and its own XAUTOCLAIM subscriber claims one entry per call.
An entry delivered more than ``max_deliveries`` times is dead-lettered and acked. Stages ack
their own entries, in the same transaction that stores their effect (FastStream's
``AckPolicy.MANUAL``), so nothing is acked before its effect is stored.

A supervisor task recreates a lost group (NOGROUP after a flush or a restart without
persistence), restarts stopped subscribers, and in ``burst`` mode stops the app once every
stage has drained what was waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aredis
from faststream import AckPolicy, FastStream
from faststream.redis import RedisBroker, RedisClusterBroker, StreamSub
from faststream.redis.message import RedisBatchStreamMessage
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services import metrics, server
from services.logging import get_logger
from services.ops.heartbeat import Heartbeat
from services.redact import redact
from services.settings import Settings
from services.wire import Entry, dead_letter_fields


@dataclass(frozen=True, slots=True)
class Consumes:
    """The stream a stage reads, its group, and where its poison messages go."""

    stream: str
    group: str
    dead_stream: str


class Stage(Protocol):
    name: str

    @property
    def consumes(self) -> Consumes | None:
        """The stream this stage reads; None for a stage fed from outside (ingest)."""

    async def start(self) -> None:
        """Load configuration, start background tasks. Raise to refuse to start."""

    async def stop(self) -> None:
        """Finish the work in hand (called after the subscribers stopped)."""

    async def handle(self, batch: Sequence[Entry]) -> None:
        """Handle entries and XACK each one whose effect is stored. Raise: nothing is acked."""

    async def busy(self) -> bool:
        """Work held outside the input stream (inbox files, scheduled retries, digests)."""


def partitions_of(stage: Stage) -> list[Consumes]:
    """Every stream the stage reads: its ``partitions`` when it has them, else its ``consumes``."""
    parts: list[Consumes] | None = getattr(stage, "partitions", None)
    if parts:
        return list(parts)
    return [stage.consumes] if stage.consumes is not None else []


@dataclass
class Context:
    """What every stage gets: the settings, the server, a client for its own commands."""

    settings: Settings
    endpoint: server.Endpoint
    redis: aredis.Redis


async def ensure_group(redis: aredis.Redis, stream: str, group: str) -> bool:
    """Create the group at id 0 with MKSTREAM (so entries added before it are read); True if new."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" in str(error):
            return False
        raise
    return True


async def group_idle(redis: aredis.Redis, stream: str, group: str) -> bool:
    """No entry waiting for the group and none pending in it."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return True  # no stream: nothing waiting
    for info in groups:
        name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
        if name != group:
            continue
        if info["pending"]:
            return False
        lag = info.get("lag")
        if lag is None:  # undetermined after deletions: compare ids instead
            stream_info = await redis.xinfo_stream(stream)
            return bool(stream_info["last-generated-id"] == info["last-delivered-id"])
        return int(lag) == 0
    return await redis.xlen(stream) == 0


async def _parse_batch(raw: Any) -> RedisBatchStreamMessage:
    # Entries carry our own field names (report/alert), not FastStream's envelope: hand the
    # raw entries through untouched and decode them per entry, so one bad entry cannot fail
    # the whole batch.
    return RedisBatchStreamMessage(raw_message=raw, body=b"", consumer=None, group=None)  # type: ignore[arg-type]


async def _decode_as_is(message: RedisBatchStreamMessage) -> RedisBatchStreamMessage:
    # The handler takes the message as its body, not through a ``Context`` parameter: the
    # injector resolves such parameters in a worker thread, a thread hop for every batch.
    return message


@dataclass
class StreamWorker:
    """Binds one stage to its group: reader and reclaimer subscribers, poison handling."""

    stage: Stage
    consumes: Consumes
    ctx: Context
    subscribers: list[Any] = field(default_factory=list)
    on_progress: Callable[[], None] | None = None
    in_flight: set[str] = field(default_factory=set)
    """Entries this process is handling now: its own reclaimer must not take them a second time
    (a batch slowed past ``reclaim_idle``, say by a server restart, would be handled twice)."""

    def register(self, broker: RedisBroker) -> None:
        s = self.ctx.settings
        common: dict[str, Any] = {
            "group": self.consumes.group,
            "consumer": s.consumer,
            "batch": True,
            "polling_interval": int(s.poll_interval * 1000),
        }
        reader = broker.subscriber(
            stream=StreamSub(self.consumes.stream, max_records=s.batch_size, **common),
            parser=_parse_batch, decoder=_decode_as_is, ack_policy=AckPolicy.MANUAL,
            title=f"{self.stage.name}-reader",
        )  # fmt: skip

        async def read_new(message: Any) -> None:
            await self.on_batch(message, reclaimed=False)

        reader(read_new)
        self.subscribers = [reader]

    async def on_batch(self, message: RedisBatchStreamMessage, *, reclaimed: bool) -> None:
        raw = message.raw_message
        ids = [i.decode() for i in raw["message_ids"]]
        await self.on_entries(
            [Entry(i, d) for i, d in zip(ids, raw["data"], strict=True)], reclaimed=reclaimed
        )

    async def on_entries(self, entries: list[Entry], *, reclaimed: bool) -> None:
        name = self.stage.name
        if reclaimed:
            metrics.RECLAIMED.labels(name).inc(len(entries))
            entries = await self._with_delivery_counts(entries)
            entries = await self._bury_poison(entries)
        if not entries:
            return
        metrics.MESSAGES_IN.labels(name).inc(len(entries))
        if retried := sum(1 for e in entries if e.deliveries > 1):
            metrics.RETRIES.labels(name).inc(retried)
        started = time.perf_counter()
        ids = [e.id for e in entries]
        self.in_flight.update(ids)
        try:
            if getattr(self.stage, "partitions", None):
                await self.stage.handle(entries, self.consumes)  # type: ignore[call-arg]
            else:
                await self.stage.handle(entries)
        except Exception as error:
            metrics.MESSAGES_FAILED.labels(name).inc(len(entries))
            # Kept for the dead letter, should these entries never get through.
            with contextlib.suppress(Exception):
                text = redact(f"{type(error).__name__}: {error}")
                await note_errors(self.ctx.redis, self.consumes, {e.id: text for e in entries})
            raise
        finally:
            self.in_flight.difference_update(ids)
            metrics.HANDLE_SECONDS.labels(name).observe(time.perf_counter() - started)
        metrics.MESSAGES_OUT.labels(name).inc(len(entries))
        metrics.LAST_PROGRESS.labels(name).set_to_current_time()
        if self.on_progress is not None:
            self.on_progress()

    async def _with_delivery_counts(self, entries: list[Entry]) -> list[Entry]:
        # One XPENDING over the claimed range gives every entry's delivery count.
        c = self.consumes
        pending = await self.ctx.redis.xpending_range(
            c.stream, c.group, min=entries[0].id, max=entries[-1].id, count=len(entries) * 2 + 10,
            consumername=self.ctx.settings.consumer,
        )  # fmt: skip
        counts = {
            (p["message_id"].decode() if isinstance(p["message_id"], bytes) else p["message_id"]): int(
                p["times_delivered"]
            )
            for p in pending
        }
        return [Entry(e.id, e.fields, counts.get(e.id, 1)) for e in entries]

    async def reclaim_until(self, stop: asyncio.Event) -> None:
        """The group's reclaimer: XAUTOCLAIM entries idle past ``reclaim_idle``, in batches.

        Stops between batches once ``stop`` is set, so the batch in hand is finished and acked.
        """
        s = self.ctx.settings
        c = self.consumes
        log = get_logger(stage=self.stage.name, component="reclaimer")
        pause = min(max(s.reclaim_idle / 4, 0.05), 5.0)
        start = "0-0"

        async def rest() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

        while not stop.is_set():
            try:
                next_id, claimed, deleted = await _xautoclaim(
                    self.ctx.redis,
                    c.stream,
                    c.group,
                    s.consumer,
                    int(s.reclaim_idle * 1000),
                    start,
                    s.batch_size,
                )
                if deleted:
                    # Trimmed while pending: the data is gone, only its id remains to report.
                    log.error(
                        "pending entries were trimmed before being handled",
                        entry_ids=deleted[:20],
                        count=len(deleted),
                    )
                entries = [Entry(i, f) for i, f in claimed if f is not None and i not in self.in_flight]
                if entries:
                    log.info("reclaimed", count=len(entries), first=entries[0].id)
                    await self.on_entries(entries, reclaimed=True)
                start = next_id
                if next_id == "0-0" and not entries:
                    await rest()
            except ResponseError as error:
                if "NOGROUP" in str(error):
                    with contextlib.suppress(Exception):
                        await ensure_group(self.ctx.redis, c.stream, c.group)
                        log.warning("consumer group recreated", stream=c.stream, group=c.group)
                else:
                    metrics.REDIS_ERRORS.labels("reclaimer").inc()
                    log.error("reclaim failed", error=str(error))
                start = "0-0"
                await rest()
            except Exception as error:
                # A dropped connection or a restarting server: the client retried with backoff
                # already; rest and start over rather than exit.
                metrics.REDIS_ERRORS.labels("reclaimer").inc()
                log.error("reclaim failed", error=str(error))
                start = "0-0"
                await rest()

    async def _bury_poison(self, entries: list[Entry]) -> list[Entry]:
        limit = self.ctx.settings.max_deliveries
        keep = [e for e in entries if e.deliveries <= limit]
        poison = [e for e in entries if e.deliveries > limit]
        if not poison:
            return keep
        key = errors_key(self.consumes)
        errors = await self.ctx.redis.hmget(key, [e.id for e in poison])
        for entry, error in zip(poison, errors, strict=True):
            reason = f"delivered {entry.deliveries} times (limit {limit}) without being handled"
            if error:
                reason += (
                    f"; last error: {error.decode('utf-8', 'replace') if isinstance(error, bytes) else error}"
                )
            await dead_letter(self.ctx.redis, self.stage.name, self.consumes, entry, reason)
        await self.ctx.redis.hdel(key, *[e.id for e in poison])
        return keep

    async def idle(self) -> bool:
        c = self.consumes
        return await group_idle(self.ctx.redis, c.stream, c.group)


async def _xautoclaim(
    redis: aredis.Redis,
    stream: str,
    group: str,
    consumer: str,
    idle_ms: int,
    start: str,
    count: int,
) -> tuple[str, list[tuple[str, dict[bytes, bytes] | None]], list[str]]:
    command = ("XAUTOCLAIM", stream, group, consumer, idle_ms, start, "COUNT", count)
    reply = await redis.execute_command(*command)  # type: ignore[no-untyped-call]
    next_id = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
    claimed = []
    for item in reply[1]:
        if item is None:
            continue
        entry_id, fields = item[0], item[1]
        decoded_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        if isinstance(fields, list):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        claimed.append((decoded_id, fields))
    deleted = [d.decode() if isinstance(d, bytes) else d for d in (reply[2] if len(reply) > 2 else [])]
    return next_id, claimed, deleted


def errors_key(consumes: Consumes) -> str:
    """A hash of the last error of each entry that failed in this group, for its dead letter."""
    return f"{consumes.stream}:errors:{consumes.group}"


async def note_errors(redis: aredis.Redis, consumes: Consumes, errors: dict[str, str]) -> None:
    """Remember why these entries failed (secrets masked); the hash lives a week past the last."""
    if not errors:
        return
    key = errors_key(consumes)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping={i: redact(e)[:2000] for i, e in errors.items()})
        pipe.expire(key, 7 * 86_400)
        await pipe.execute()


async def dead_letter(redis: aredis.Redis, stage: str, consumes: Consumes, entry: Entry, reason: str) -> None:
    """Move an entry to the stage's dead-letter stream and ack it, in one transaction."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(consumes.dead_stream, dead_letter_fields(stage, entry, consumes.stream, reason))  # type: ignore[arg-type]
        pipe.xack(consumes.stream, consumes.group, entry.id)
        await pipe.execute()
    metrics.DEAD_LETTERS.labels(stage).inc()
    get_logger(stage=stage).warning(
        "dead-lettered", entry_id=entry.id, reason=reason, dead_stream=consumes.dead_stream
    )


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


def run(
    settings: Settings,
    make_stages: Callable[[Context], Sequence[Stage]],
    ctx: Context,
    *,
    burst: bool = False,
) -> None:
    """Build the app and run it until it stops. A server that cannot be reached while the app
    starts (not up yet, or restarting at that moment) is tried again with a fresh app and client
    for up to ``startup_wait``: nothing was read yet, so starting over is safe. Once running, the
    broker's own retries and the supervisor deal with a lost server."""
    deadline = time.monotonic() + settings.startup_wait
    log = get_logger(component="runtime")
    while True:
        runtime, app = _assemble(settings, make_stages(ctx), ctx, burst=burst)
        try:
            asyncio.run(app.run())
            return
        except (RedisConnectionError, RedisTimeoutError, ConnectionError) as error:
            if runtime.started or time.monotonic() >= deadline:
                raise
            log.warning(
                "server unreachable while starting, trying again",
                error=redact(f"{type(error).__name__}: {error}"),
            )
            time.sleep(1)
            # The old client's connections belong to the event loop that just ended.
            ctx = Context(settings, ctx.endpoint, server.client(ctx.endpoint))


def build(settings: Settings, stages: Sequence[Stage], ctx: Context, *, burst: bool = False) -> FastStream:
    """A FastStream app running these stages, supervised."""
    return _assemble(settings, stages, ctx, burst=burst)[1]


def _assemble(
    settings: Settings, stages: Sequence[Stage], ctx: Context, *, burst: bool = False
) -> tuple[Runtime, FastStream]:
    broker_class = RedisClusterBroker if ctx.endpoint.cluster else RedisBroker
    broker = broker_class(
        ctx.endpoint.url_with_password(),
        graceful_timeout=settings.shutdown_grace,
        logger=get_logger(component="faststream"),
        log_level=10,  # FastStream's per-message lines at DEBUG: ours carry the ids
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
    )
    runtime = Runtime(ctx, list(stages), burst=burst)
    for stage in stages:
        # One reader and one reclaimer per partition the stage consumes.
        for consumes in partitions_of(stage):
            worker = StreamWorker(stage, consumes, ctx)
            worker.register(broker)
            runtime.workers.append(worker)
    app = FastStream(
        broker,
        logger=get_logger(component="faststream"),
        on_startup=[runtime.on_startup],
        after_startup=[runtime.after_startup],
        on_shutdown=[runtime.on_shutdown],
        after_shutdown=[runtime.after_shutdown],
    )
    runtime.app = app
    return runtime, app


def context(settings: Settings) -> Context:
    endpoint = server.resolve(settings)
    return Context(settings, endpoint, server.client(endpoint))


def standalone(make_stages: Callable[[Context], Sequence[Stage]]) -> FastStream:
    """A stage as its own FastStream app (``faststream run services.rules.app:app``)."""
    from services.logging import configure

    settings = Settings()
    configure(settings.log_level, settings.log_format)
    ctx = context(settings)
    return build(settings, make_stages(ctx), ctx)
