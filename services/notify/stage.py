"""The notify stage: alerts in, one message per subscriber and case out, each delivery tracked.

Two halves, joined by Redis (:mod:`services.notify.outbox`):

- *Intake* (``handle``, one batch of the alerts stream): route each alert to the subscriptions
  that want it (:mod:`services.notify.plan`), drop silenced alerts, repeats of an alert id and
  repeats of a case within its re-alert window, and put the rest into open messages, one per
  (subscription, channel, bucket), due after the group wait or at the next digest tick. All of
  that and the XACK happen in one script: an alert is acked exactly when its messages are queued.
- *Senders* (one task per channel): take due messages from the channel's schedule, render
  them with the subscription's templates, send, and record the outcome right after the send.
  A failed send is retried with exponential backoff and jitter, then dead-lettered to
  ``<ns>:alerts:dead`` with the reason. Channels never wait for each other: a throttled or
  slow channel only delays its own queue.

A restart loses nothing and resends nothing: queued messages and retries live in Redis; a message
is leased while it is sent, so only a crash between a send and its record repeats that message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from schemas.alert import Alert
from schemas.streams import ALERT_FIELD, NOTIFY_GROUP
from services import metrics
from services.logging import get_logger
from services.notify import plan
from services.notify.channels import Channel, load_channels
from services.notify.outbox import Claimed, Outbox, Queued, SendOutcome
from services.notify.render import Renderer
from services.notify.silences import Silence, SilenceStore, first_match
from services.notify.subscriptions import Subscription, load_subscriptions, renderer_for
from services.redact import redact
from services.runtime import Consumes, Context, deadletter
from services.runtime.deadletter import DeadLetter
from services.wire import BadMessage, Entry, decode_alert


def fingerprint(dedup_key: str) -> str:
    return hashlib.sha256(dedup_key.encode()).hexdigest()[:24]


class NotifyStage:
    name = "notify"

    def __init__(
        self,
        ctx: Context,
        channels: list[Channel] | None = None,
        subscriptions: list[Subscription] | None = None,
    ) -> None:
        self.ctx = ctx
        settings = ctx.settings
        names = settings.streams
        self.partitions = [
            Consumes(names.alert_stream(p), NOTIFY_GROUP, names.alerts_dead_stream(p))
            for p in range(names.partitions)
        ]
        self.names = names
        self.channels = channels
        self.subscriptions = subscriptions
        self.renderers: dict[str, Renderer] = {}
        self.outbox = Outbox(
            ctx.redis,
            names.notify_namespace,
            settings.notify_history_retention,
            settings.dedup_retention,
            separate_ack=names.is_partitioned,
        )
        self.silences = SilenceStore(ctx.redis, names.notify_namespace)
        self.log = get_logger(stage=self.name)
        self._stop = asyncio.Event()
        self._wake: dict[str, asyncio.Event] = {}
        self._senders: list[asyncio.Task[None]] = []
        self._next_purge = 0.0

    async def start(self) -> None:
        settings = self.ctx.settings
        if self.channels is None:
            self.channels = load_channels(settings.channels_file)
        tags = sorted({t for c in self.channels for t in c.tags})
        if self.subscriptions is None:
            self.subscriptions = load_subscriptions(settings.subscriptions_file, tags)
        self.renderers = {s.name: renderer_for(s) for s in self.subscriptions}
        self.log.info(
            "channels loaded",
            channels=[{"id": c.id, "url": c.display, "tags": sorted(c.tags)} for c in self.channels],
            subscriptions=[s.name for s in self.subscriptions],
        )
        used = {c.id: c for c in self.channels if any(c.tags & set(s.channels) for s in self.subscriptions)}
        await self._give_up_unknown_channels(used)
        for channel in used.values():
            self._wake[channel.id] = asyncio.Event()
            self._senders.append(asyncio.create_task(self._send_loop(channel), name=f"notify-{channel.id}"))

    async def _give_up_unknown_channels(self, known: dict[str, Channel]) -> None:
        """Messages queued for a channel no longer in use (removed from the channels file, or its
        URL changed, which changes its id) would wait forever: dead-letter them with the reason,
        so that ``dlq replay notify`` sends them through the channels configured now."""
        for channel, count in (await self.outbox.queued_channels()).items():
            if channel in known:
                continue
            reason = f"channel {channel} is no longer configured (removed, or its URL changed)"
            self.log.warning("messages for an unknown channel", channel=channel, messages=count)
            # Every queued message, due or not (a time past any schedule), 100 at a time.
            while units := (
                await self.outbox.claim(channel, 1e18, 60, units=100, limits={}, flying=[])
            ).units:
                outcomes = [
                    SendOutcome(
                        m,
                        "dead",
                        reason,
                        dead_stream=self._dead_stream(m),
                        instead=self._channels_of(m.subscription, known),
                    )
                    for u in units
                    for m in u
                ]
                await self.outbox.finish(outcomes, time.time())
                metrics.DELIVERIES.labels(channel, "dead").inc(len(outcomes))

    def _channels_of(self, subscription: str, known: dict[str, Channel]) -> list[str]:
        wanted = next((set(s.channels) for s in self.subscriptions or [] if s.name == subscription), set())
        return [cid for cid, c in known.items() if c.tags & wanted]

    async def stop(self) -> None:
        """Let each sender finish the message in hand and record it, then stop."""
        self._stop.set()
        for event in self._wake.values():
            event.set()
        if self._senders:
            _, late = await asyncio.wait(self._senders, timeout=self.ctx.settings.shutdown_grace)
            for task in late:
                task.cancel()

    async def busy(self) -> bool:
        """Messages waiting in a group window or digest, for a retry, or being sent."""
        return await self.outbox.outstanding(list(self._wake)) > 0

    # --- intake

    async def handle(self, batch: Sequence[Entry], consumes: Consumes) -> None:
        assert self.channels is not None
        assert self.subscriptions is not None
        settings = self.ctx.settings
        c = consumes
        decoded: list[tuple[Entry, Alert]] = []
        dead: list[DeadLetter] = []
        for entry in batch:
            try:
                decoded.append((entry, decode_alert(entry, settings.max_report_bytes)))
            except BadMessage as error:
                dead.append(DeadLetter(entry, str(error)))
        await deadletter.bury(self.ctx.redis, self.name, c, dead)
        if not decoded:
            return

        now = time.time()
        if time.monotonic() >= self._next_purge:
            # Ended silences are kept as long as the alerts they held (``silence list --all``
            # shows them with their counts), then forgotten: the hash does not grow forever.
            self._next_purge = time.monotonic() + 3600
            await self.silences.purge(now, keep=settings.notify_history_retention)
        silences = await self.silences.active(now)
        tags = [(ch.id, ch.tags) for ch in self.channels if ch.id in self._wake]
        items: list[tuple[Alert, bytes, list[Queued]]] = []
        for entry, alert in decoded:
            # A backfill alert (a rule over time fired by a report older than the horizon) is
            # recorded by the records stage and shown in backtests, never notified.
            routes = [] if alert.backfill else plan.route(alert, self.subscriptions, tags, silences, now)
            queued = [
                Queued(
                    subscription=r.subscription.name,
                    silence=r.silence,
                    window=r.window,
                    dedup_key=fingerprint(alert.dedup_key),
                    bucket=r.bucket,
                    due=plan.due_at(r.subscription, now, settings.notify_group_wait),
                    channels=r.channels,
                )
                for r in routes
            ]
            items.append((alert, entry.fields[ALERT_FIELD.encode()], queued))
            # Per alert at debug only: at thousands of alerts a second this line cost more than
            # routing them. Each alert's route is in its history (``tradewatch alerts show``).
            self.log.debug(
                "alert routed",
                alert_id=alert.alert_id,
                rule_id=alert.rule_id,
                report_id=alert.report_id,
                subscriptions=[q.subscription for q in queued if not q.silence],
                silenced=[q.subscription for q in queued if q.silence],
            )
        counts = await self.outbox.accept(items, [e.id for e, _ in decoded], c.stream, c.group, now)
        self.log.info(
            "batch accepted",
            entries=len(batch),
            **counts,
            alert_ids=[a.alert_id for _, a in decoded][:50],
            ms=round((time.time() - now) * 1000, 3),
        )
        for event in self._wake.values():
            event.set()

    # --- senders

    def _coalesce(self) -> dict[str, int]:
        """How many messages of each subscription one send may carry."""
        default = self.ctx.settings.notify_coalesce
        return {s.name: s.coalesce or default for s in self.subscriptions or []}

    async def _send_loop(self, channel: Channel) -> None:
        wake = self._wake[channel.id]
        settings = self.ctx.settings
        poll = settings.poll_interval
        concurrency = settings.notify_send_concurrency
        lease = settings.notify_send_timeout * 1.5 + 1
        limits = self._coalesce()
        log = self.log.bind(channel=channel.id)
        # A sliding window: up to ``concurrency`` sends of this channel in flight, and a free
        # slot is filled as soon as one send is recorded (not when a whole group is done). A
        # send carries one message, or, when several of one subscription are due at once (a
        # backlog), up to its ``coalesce`` of them as one: a burst of reports becomes fewer,
        # longer messages instead of a queue that grows faster than the channel takes it.
        # Each send is leased when claimed and recorded right after it, so a crash repeats at
        # most the sends in flight then.
        flying: dict[asyncio.Task[None], list[str]] = {}
        try:
            while not self._stop.is_set():
                try:
                    # Cleared before looking, not after: a wake-up set while we look is kept, so
                    # a message queued meanwhile is sent now rather than after a poll interval.
                    wake.clear()
                    free = concurrency - len(flying)
                    if free <= 0:  # full: wait for a send to land
                        await asyncio.wait(flying, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
                        continue
                    in_hand = [d for ids in flying.values() for d in ids]
                    claim = await self.outbox.claim(
                        channel.id, time.time(), lease, units=free, limits=limits, flying=in_hand
                    )
                    # Claimed messages are leased: they are sent even when a stop came meanwhile.
                    for unit in claim.units:
                        task = asyncio.create_task(self._send(channel, unit, claim.silences))
                        flying[task] = [m.id for m in unit]
                        task.add_done_callback(functools.partial(self._landed, flying, wake=wake, log=log))
                    if claim.units:
                        continue
                    if flying:  # nothing else due: wait for a send or a wake-up
                        waiter = asyncio.ensure_future(wake.wait())
                        await asyncio.wait(
                            [waiter, *flying], timeout=poll, return_when=asyncio.FIRST_COMPLETED
                        )
                        waiter.cancel()
                        continue
                    upcoming = claim.next_due
                    wait = poll if upcoming is None else min(poll, max(0.005, upcoming - time.time()))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), wait)
                except Exception as error:  # Redis down for a while: keep trying, never die silently
                    log.error("sender failed", error=redact(f"{type(error).__name__}: {error}"))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), poll)
        finally:
            # Stopping: the sends in flight finish and are recorded (each is bounded by the
            # send timeout), so a graceful stop repeats nothing.
            if flying:
                await asyncio.gather(*flying, return_exceptions=True)

    @staticmethod
    def _landed(
        flying: dict[asyncio.Task[None], list[str]],
        task: asyncio.Task[None],
        wake: asyncio.Event,
        log: Any,
    ) -> None:
        flying.pop(task, None)
        wake.set()  # a slot is free: look for the next due message now
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("sender failed", error=redact(f"{type(error).__name__}: {error}"))

    async def _send(self, channel: Channel, messages: list[Claimed], silences: list[Silence]) -> None:
        """One send of claimed messages of one subscription, then its record, in one script.
        ``silences``: every silence, as read when the messages were claimed."""
        settings = self.ctx.settings
        started = time.perf_counter()
        subscription = messages[0].subscription
        renderer = self.renderers.get(subscription)
        outcomes: list[SendOutcome] = []
        present = [m for m in messages if m.alerts]
        gone = "the alerts of this message are gone (past the history retention)"
        outcomes += [
            SendOutcome(m, "dead", gone, dead_stream=self._dead_stream(m)) for m in messages if not m.alerts
        ]
        # Silences are checked again now: one added while a message waited (a group wait, a
        # digest, a retry) holds what it matches, as it would have at intake.
        now = time.time()
        silences = [s for s in silences if s.active(now)]
        if silences and present:
            kept = []
            for m in present:
                held = {
                    a.alert_id: hit for a in m.alerts if (hit := first_match(silences, a, subscription, now))
                }
                outcomes += [
                    SendOutcome(replace(m, alerts=[a]), "silenced", held[a.alert_id].id)
                    for a in m.alerts
                    if a.alert_id in held
                ]
                if len(held) < len(m.alerts):
                    kept.append(replace(m, alerts=[a for a in m.alerts if a.alert_id not in held]))
            present = kept
        if renderer is None:
            dropped = f"subscription {subscription!r} is no longer configured"
            outcomes += [SendOutcome(m, "dead", dropped, dead_stream=self._dead_stream(m)) for m in present]
        elif present:
            alerts = list({a.alert_id: a for m in present for a in m.alerts}.values())
            result, error = await self._attempt(channel, renderer, alerts)
            for m in present:
                outcome, detail, retry_at = result, error, None
                if outcome == "failed" and m.attempts >= settings.notify_max_attempts:
                    outcome, detail = "dead", f"{error} (gave up after {m.attempts} attempts)"
                if outcome == "failed":
                    retry_at = time.time() + plan.backoff(
                        m.attempts, settings.notify_retry_base, settings.notify_retry_max
                    )
                outcomes.append(SendOutcome(m, outcome, detail, retry_at, self._dead_stream(m)))
        ms = round((time.perf_counter() - started) * 1000, 3)
        await self.outbox.finish(outcomes, time.time(), ms=ms)
        for o in outcomes:
            metrics.DELIVERIES.labels(channel.id, o.outcome).inc()
        worst = max(outcomes, key=lambda r: ("silenced", "sent", "failed", "dead").index(r.outcome))
        alerts = [a for o in outcomes for a in o.claimed.alerts]
        log = self.log.info if worst.outcome in ("sent", "silenced") else self.log.warning
        log(
            {
                "sent": "delivered",
                "silenced": "silenced before sending",
                "failed": "delivery failed",
                "dead": "delivery dead-lettered",
            }[worst.outcome],
            subscription=subscription,
            channel=channel.id,
            deliveries=[o.claimed.id for o in outcomes],
            attempts=sorted({o.claimed.attempts for o in outcomes}),
            alert_ids=[a.alert_id for a in alerts][:50],
            alerts=len(alerts),
            rule_ids=sorted({a.rule_id for a in alerts}),
            report_ids=sorted({a.report_id for a in alerts})[:50],
            error=worst.error,
            retry_in=round(worst.retry_at - time.time(), 3) if worst.retry_at else None,
            ms=ms,
        )

    def _dead_stream(self, message: Claimed) -> str:
        if not message.alerts:
            return self.names.alerts_dead
        return self.names.alerts_dead_stream(self.names.partition(message.alerts[0].report_id))

    async def _attempt(
        self, channel: Channel, renderer: Renderer, alerts: list[Alert]
    ) -> tuple[str, str | None]:
        """Render and send once: ``(sent|failed|dead, error)``; dead means it can never work."""
        limit = self.ctx.settings.notify_send_timeout
        try:
            message = renderer.render(alerts, channel.format)
        except Exception as exc:
            return "dead", redact(f"rendering failed: {type(exc).__name__}: {exc}")
        try:
            sent = await asyncio.wait_for(channel.send(message), limit)
        except TimeoutError:
            return "failed", f"{channel.display}: no answer within {limit:g}s"
        except Exception as exc:  # a plugin raising is a failed send, not a dead worker
            return "failed", redact(f"{channel.display}: {type(exc).__name__}: {exc}")
        if not sent:  # with the receiver's answer, as far as the channel's plugin let it be seen
            return "failed", f"{channel.display}: {sent.reply or 'refused, or could not be reached'}"
        return "sent", None
