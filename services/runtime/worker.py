"""One stage bound to one stream's consumer group: a reader, a reclaimer, poison handling.

- The *reader* is a FastStream batch subscriber (XREADGROUP, ``batch_size`` entries) for new
  entries.
- The *reclaimer* is a task (XAUTOCLAIM after ``reclaim_idle``, ``batch_size`` at a time) for
  entries a crashed or stalled consumer left pending: FastStream never redelivers a failed stream
  message by itself, and its own XAUTOCLAIM subscriber claims one entry per call.

An entry delivered more than ``max_deliveries`` times is dead-lettered and acked. Stages ack
their own entries, in the same step that stores their effect (FastStream's
``AckPolicy.MANUAL``), so nothing is acked before its effect is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import RedisBatchStreamMessage
from redis.exceptions import ResponseError

from services import metrics
from services.logging import get_logger
from services.redact import redact
from services.runtime import deadletter, groups
from services.runtime.contract import Consumes, Context, GatedStage, StreamStage
from services.wire import Entry


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
    """Binds one stage to one of its streams: reader and reclaimer, poison handling."""

    stage: StreamStage
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
            await self.on_batch(message)

        reader(read_new)
        self.subscribers = [reader]

    async def on_batch(self, message: RedisBatchStreamMessage) -> None:
        raw = message.raw_message
        ids = [i.decode() for i in raw["message_ids"]]
        await self.on_entries([Entry(i, d) for i, d in zip(ids, raw["data"], strict=True)], reclaimed=False)

    async def on_entries(self, entries: list[Entry], *, reclaimed: bool) -> None:
        name = self.stage.name
        if reclaimed:
            metrics.RECLAIMED.labels(name).inc(len(entries))
            entries = await self._with_delivery_counts(entries)
            entries = await deadletter.bury_poison(
                self.ctx.redis, name, self.consumes, entries, self.ctx.settings.max_deliveries
            )
        if not entries:
            return
        metrics.MESSAGES_IN.labels(name).inc(len(entries))
        if retried := sum(1 for e in entries if e.deliveries > 1):
            metrics.RETRIES.labels(name).inc(retried)
        started = time.perf_counter()
        ids = [e.id for e in entries]
        self.in_flight.update(ids)
        try:
            await self.stage.handle(entries, self.consumes)
        except Exception as error:
            metrics.MESSAGES_FAILED.labels(name).inc(len(entries))
            # Kept for the dead letter, should these entries never get through.
            with contextlib.suppress(Exception):
                text = redact(f"{type(error).__name__}: {error}")
                await deadletter.note_errors(self.ctx.redis, self.consumes, {e.id: text for e in entries})
            raise
        finally:
            self.in_flight.difference_update(ids)
            metrics.HANDLE_SECONDS.labels(name).observe(time.perf_counter() - started)
        metrics.MESSAGES_OUT.labels(name).inc(len(entries))
        metrics.LAST_PROGRESS.labels(name).set_to_current_time()
        if self.on_progress is not None:
            self.on_progress()

    async def _with_delivery_counts(self, entries: list[Entry]) -> list[Entry]:
        c = self.consumes
        counts = await groups.delivery_counts(
            self.ctx.redis, c.stream, c.group, self.ctx.settings.consumer,
            entries[0].id, entries[-1].id, len(entries) * 2 + 10,
        )  # fmt: skip
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

        gated = self.stage if isinstance(self.stage, GatedStage) else None
        while not stop.is_set():
            try:
                if gated is not None and not await gated.can_handle():
                    await rest()
                    continue
                claimed = await groups.autoclaim(
                    self.ctx.redis, c.stream, c.group, s.consumer,
                    int(s.reclaim_idle * 1000), start, s.batch_size,
                )  # fmt: skip
                if claimed.deleted:
                    # Trimmed while pending: the data is gone, only its id remains to report.
                    log.error(
                        "pending entries were trimmed before being handled",
                        entry_ids=claimed.deleted[:20],
                        count=len(claimed.deleted),
                    )
                entries = [Entry(i, f) for i, f in claimed.entries if i not in self.in_flight]
                if entries:
                    log.info("reclaimed", count=len(entries), first=entries[0].id)
                    await self.on_entries(entries, reclaimed=True)
                start = claimed.next_id
                if start == "0-0" and not entries:
                    await rest()
            except ResponseError as error:
                if "NOGROUP" in str(error):
                    with contextlib.suppress(Exception):
                        await groups.ensure_group(self.ctx.redis, c.stream, c.group)
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

    async def idle(self) -> bool:
        c = self.consumes
        return await groups.group_idle(self.ctx.redis, c.stream, c.group)
