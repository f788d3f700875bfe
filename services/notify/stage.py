"""The notify stage: alerts in, one message per subscriber and case out, each delivery recorded.

For a batch of alerts: route each to the subscriptions that want it; group a subscription's
alerts by their group key (by default the report: one report that trips several rules is one
message listing every reason); skip alerts this (subscription, channel) already received;
render per channel format; send to every channel at once; record each success; then ack every
entry whose deliveries are all recorded. A failed send leaves its entry pending: it is
reclaimed and retried, and dead-lettered after ``max_deliveries``. The record is written right
after the send, so a redelivery never sends again; only a crash between a send and its record
can repeat that one message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.alert import Alert
from schemas.streams import NOTIFY_GROUP
from services import metrics
from services.logging import get_logger
from services.notify.channels import Channel, load_channels
from services.notify.render import Renderer
from services.notify.subscriptions import Subscription, load_subscriptions
from services.redact import redact
from services.runtime import Consumes, Context, note_errors
from services.wire import BadMessage, Entry, dead_letter_fields, decode_alert


@dataclass
class Delivery:
    """One message for one subscription on one channel, covering one or more alerts."""

    subscription: Subscription
    channel: Channel
    alerts: list[tuple[Entry, Alert]] = field(default_factory=list)


class NotifyStage:
    name = "notify"

    def __init__(
        self,
        ctx: Context,
        channels: list[Channel] | None = None,
        subscriptions: list[Subscription] | None = None,
    ) -> None:
        self.ctx = ctx
        names = ctx.settings.streams
        self.consumes = Consumes(names.alerts, NOTIFY_GROUP, names.alerts_dead)
        self.channels = channels
        self.subscriptions = subscriptions
        self.renderer = Renderer()
        self.log = get_logger(stage=self.name)

    async def start(self) -> None:
        settings = self.ctx.settings
        if self.channels is None:
            self.channels = load_channels(settings.channels_file)
        tags = sorted({t for c in self.channels for t in c.tags})
        if self.subscriptions is None:
            self.subscriptions = load_subscriptions(settings.subscriptions_file, tags)
        self.log.info(
            "channels loaded",
            channels=[{"id": c.id, "url": c.display, "tags": sorted(c.tags)} for c in self.channels],
            subscriptions=[s.name for s in self.subscriptions],
        )

    async def stop(self) -> None:
        return None

    async def busy(self) -> bool:
        return False

    def _key(self, *parts: str) -> str:
        return self.ctx.settings.streams.key(*parts)

    async def handle(self, batch: Sequence[Entry]) -> None:
        assert self.channels is not None
        assert self.subscriptions is not None
        redis = self.ctx.redis
        c = self.consumes
        decoded: list[tuple[Entry, Alert]] = []
        dead: list[tuple[Entry, str]] = []
        for entry in batch:
            try:
                decoded.append((entry, decode_alert(entry, self.ctx.settings.max_report_bytes)))
            except BadMessage as error:
                dead.append((entry, str(error)))

        deliveries = await self._plan(decoded)
        outcomes = await asyncio.gather(*(self._deliver(d) for d in deliveries))
        failed = {
            entry.id for d, ok in zip(deliveries, outcomes, strict=True) if not ok for entry, _ in d.alerts
        }

        done = [e.id for e in batch if e.id not in failed]
        await note_errors(
            redis, c, dict.fromkeys(failed, "a channel refused the message (see the deliveries stream)")
        )
        async with redis.pipeline(transaction=True) as pipe:
            for entry, reason in dead:
                pipe.xadd(c.dead_stream, dead_letter_fields(self.name, entry, c.stream, reason))  # type: ignore[arg-type]
                self.log.warning("alert rejected", entry_id=entry.id, reason=reason)
            if done:
                pipe.xack(c.stream, c.group, *done)
            await pipe.execute()
        metrics.DEAD_LETTERS.labels(self.name).inc(len(dead))

    async def _plan(self, decoded: list[tuple[Entry, Alert]]) -> list[Delivery]:
        assert self.channels is not None
        assert self.subscriptions is not None
        grouped: dict[tuple[str, str, str], Delivery] = {}
        for entry, alert in decoded:
            wanted = [s for s in self.subscriptions if s.wants(alert)]
            if not wanted:
                self.log.info(
                    "alert routed nowhere",
                    alert_id=alert.alert_id,
                    rule_id=alert.rule_id,
                    report_id=alert.report_id,
                )
            for sub in wanted:
                for channel in self.channels:
                    if not channel.tags & set(sub.channels):
                        continue
                    key = (sub.name, channel.id, alert.group_key)
                    grouped.setdefault(key, Delivery(sub, channel)).alerts.append((entry, alert))
        if not grouped:
            return []
        # Drop what this subscription's channel already received (a redelivered alert id).
        deliveries = list(grouped.values())
        keys = [
            self._key("delivered", alert.alert_id, d.subscription.name, d.channel.id)
            for d in deliveries
            for _, alert in d.alerts
        ]
        seen = await self.ctx.redis.mget(keys)
        flags = iter(seen)
        for d in deliveries:
            d.alerts = [(e, a) for e, a in d.alerts if next(flags) is None]
        return [d for d in deliveries if d.alerts]

    async def _deliver(self, delivery: Delivery) -> bool:
        alerts = [a for _, a in delivery.alerts]
        message = self.renderer.render(alerts, delivery.channel.format)
        started = time.perf_counter()
        error = None
        try:
            ok = await delivery.channel.send(message.title, message.body)
        except Exception as exc:  # a plugin raising is a failed send, not a dead worker
            ok, error = False, redact(f"{type(exc).__name__}: {exc}")
        ms = round((time.perf_counter() - started) * 1000, 3)
        await self._record(delivery, ok, error)
        metrics.DELIVERIES.labels(delivery.channel.id, "sent" if ok else "failed").inc()
        log = self.log.info if ok else self.log.warning
        log(
            "delivered" if ok else "delivery failed",
            subscription=delivery.subscription.name,
            channel=delivery.channel.id,
            alert_ids=[a.alert_id for a in alerts],
            rule_ids=sorted({a.rule_id for a in alerts}),
            report_ids=sorted({a.report_id for a in alerts}),
            error=error,
            ms=ms,
        )
        return ok

    async def _record(self, delivery: Delivery, ok: bool, error: str | None) -> None:
        settings = self.ctx.settings
        now = datetime.now(UTC).isoformat()
        async with self.ctx.redis.pipeline(transaction=True) as pipe:
            for _, alert in delivery.alerts:
                if ok:
                    pipe.set(
                        self._key(
                            "delivered",
                            alert.alert_id,
                            delivery.subscription.name,
                            delivery.channel.id,
                        ),
                        now,
                        ex=int(settings.dedup_retention),
                    )
                pipe.xadd(
                    self._key("deliveries"),
                    {
                        "alert_id": alert.alert_id,
                        "rule_id": alert.rule_id,
                        "report_id": alert.report_id,
                        "subscription": delivery.subscription.name,
                        "channel": delivery.channel.id,
                        "outcome": "sent" if ok else "failed",
                        "error": error or "",
                        "at": now,
                    },
                    maxlen=100_000,
                    approximate=True,
                )
            await pipe.execute()
