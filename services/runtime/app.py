"""A FastStream app that runs stages: assembled, started, and started over while the server
cannot be reached yet."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from faststream import FastStream
from faststream.redis import RedisBroker, RedisClusterBroker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services import server
from services.logging import get_logger
from services.redact import redact
from services.runtime.contract import Context, Stage, StreamStage
from services.runtime.supervisor import Runtime
from services.runtime.worker import StreamWorker
from services.settings import Settings


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
        if not isinstance(stage, StreamStage):
            continue  # fed from outside: nothing to read
        # One reader and one reclaimer per partition the stage consumes.
        for consumes in stage.partitions:
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
