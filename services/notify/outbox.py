"""The notifier's state in Redis: accepted alerts, open messages, the send schedule, history.

The key layout is documented, and every key name built, in :mod:`services.notify.keys`.

``accept`` stores a batch's routing decisions and acks its stream entries in one script, so an
alert is acked exactly when its messages are durably queued. ``claim`` takes due messages for
sending, with their alerts, and leases them (their score moves to now + lease), so a replica
that dies mid-send leaves them to be sent again after the lease: only the messages of the sends
in flight can repeat. Messages of one subscription due at once are claimed together, to go out
as one send (a backlog is coalesced). ``finish`` records each message's outcome right after
its send. Each is one script: one round trip however many messages and alerts.

The scripts are files of this package (``services/notify/lua/accept.lua``, ``claim.lua``,
``finish.lua``; each one's header says its KEYS, ARGV and reply), run by EVALSHA (redis-py's
``register_script``, which loads a script the server does not know yet). What passes between
them and Python is typed in :mod:`services.notify.payloads`.

The scripts spell no key name: each call passes them the key templates of the keys module, under
the notifier's namespace, and the names of the streams they write to. On a Redis Cluster (or with partitions) that namespace carries one hash tag
(``<ns>:{notify}``, see ``StreamNames.notify_namespace``), so every key a script touches hashes to
one slot; each script declares one of its keys (KEYS[1]) so that a cluster client routes it to
that slot. The alert stream partitions live on other slots: there ``accept`` acks after its
script (``separate_ack``). That is safe because ``accept`` is idempotent
(``accepted:<alert>:<sub>`` is set once): a crash between the two redelivers the entry, which is
then counted as a repeat, never queued twice.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aredis

from schemas.alert import Alert
from services.notify import payloads
from services.notify.keys import NotifyKeys
from services.notify.payloads import AcceptCounts, Queued, iso
from services.notify.silences import Silence, parse_silences
from services.wire import as_text

__all__ = ["Claim", "Claimed", "Outbox", "Queued", "SendOutcome", "iso", "script"]


@functools.cache
def script(name: str) -> str:
    """The text of one of the outbox's scripts (``accept``, ``claim``, ``finish``)."""
    return resources.files("services.notify").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


@dataclass
class Claimed:
    id: str
    channel: str
    subscription: str
    attempts: int
    alerts: list[Alert]


@dataclass(frozen=True)
class Claim:
    units: list[list[Claimed]]
    """Sends to make, each a list of messages of one subscription."""
    silences: list[Silence]
    next_due: float | None
    """When the first message of the schedule is due (after this claim), if any."""


@dataclass(frozen=True)
class SendOutcome:
    """What one send did for one of the messages in it."""

    claimed: Claimed
    outcome: str  # sent | failed | dead | silenced (then ``error`` is the silence's id)
    error: str | None = None
    retry_at: float | None = None
    dead_stream: str | None = None
    instead: list[str] | None = None  # dead because the channel is gone: who may take it on replay


class Outbox:
    def __init__(
        self,
        redis: aredis.Redis,
        namespace: str,
        retention: float,
        dedup_retention: float,
        *,
        separate_ack: bool = False,
    ) -> None:
        self.redis = redis
        self.separate_ack = separate_ack
        self.keys = NotifyKeys(namespace)
        self.retention = max(1, int(retention))
        self.dedup_retention = max(1, int(dedup_retention))
        self._accept = redis.register_script(script("accept"))
        self._claim = redis.register_script(script("claim"))
        self._finish = redis.register_script(script("finish"))

    async def accept(
        self,
        items: list[tuple[Alert, bytes, list[Queued]]],
        ack: list[str],
        stream: str,
        group: str,
        now: float,
    ) -> AcceptCounts:
        """Queue each alert (with its JSON as it came, already validated) for its routes and ack
        the entries, in one script. The alerts' JSON goes as arguments of their own, not inside
        the payload: nothing is encoded again here or escaped and decoded in the script."""
        args = payloads.accept_args(
            self.keys.templates,
            [payloads.AcceptItem(alert.alert_id, raw, queued) for alert, raw, queued in items],
            ack=[] if self.separate_ack else ack,
            stream=stream,
            group=group,
            now=now,
            retention=self.retention,
            dedup_retention=self.dedup_retention,
        )
        reply = await self._accept(keys=[self.keys.recent], args=args)
        if self.separate_ack and ack:
            await self.redis.xack(stream, group, *ack)
        return payloads.read_accept(reply)

    async def queued_channels(self) -> dict[str, int]:
        """Every channel with messages in its schedule, and how many."""
        prefix = self.keys.due_prefix
        keys = [as_text(k) async for k in self.redis.scan_iter(match=prefix + "*", count=1000)]
        sizes = [int(await self.redis.zcard(k)) for k in keys]
        return {k.removeprefix(prefix): n for k, n in zip(keys, sizes, strict=True) if n}

    async def outstanding(self, channels: list[str]) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for c in channels:
                pipe.zcard(self.keys.due(c))
            sizes = await pipe.execute()
        return sum(int(s) for s in sizes)

    async def claim(
        self,
        channel: str,
        now: float,
        lease: float,
        *,
        units: int,
        limits: dict[str, int],
        flying: list[str],
    ) -> Claim:
        """Lease due messages of a channel, in one script: up to ``units`` sends, each of up to
        ``limits[subscription]`` messages of one subscription (messages due together, a backlog,
        go out as one send). With their alerts, every silence and the next due time, read in the
        same script. ``flying``: messages this sender is still sending (not taken again even if
        their lease ran out)."""
        args = payloads.claim_args(
            self.keys.templates,
            now=now,
            lease=lease,
            max_units=units,
            limits=limits,
            flying=flying,
            scan=max(64, 4 * units * max(limits.values(), default=1)),
        )
        reply = payloads.read_claim(await self._claim(keys=[self.keys.due(channel)], args=args))
        parsed = {aid: Alert.model_validate_json(raw) for aid, raw in reply.alerts.items()}
        claimed = [
            [
                Claimed(
                    id=m.id,
                    channel=channel,
                    subscription=unit.subscription,
                    attempts=m.attempts,
                    alerts=[parsed[a] for a in m.alert_ids if a in parsed],
                )
                for m in unit.messages
            ]
            for unit in reply.units
        ]
        return Claim(claimed, parse_silences(reply.silences), reply.next_due)

    async def finish(self, outcomes: list[SendOutcome], now: float, *, ms: float | None = None) -> None:
        """Record what became of messages sent together: ``sent``, ``failed`` (due again at its
        ``retry_at``), ``dead`` or ``silenced`` (those alerts of it), each with a history event
        per alert and a ``deliveries`` entry, in one script (atomic on the server, one round
        trip)."""
        at = iso(now)
        if self.separate_ack:
            # A dead-letter stream is an alert partition, on another slot than this state:
            # written first, so a crash before the record below repeats it rather than loses it.
            for o in outcomes:
                if o.outcome == "dead" and o.dead_stream:
                    for alert in o.claimed.alerts:
                        fields = self.dead_letter(alert, o.claimed, o.error, at)
                        await self.redis.xadd(o.dead_stream, fields)  # type: ignore[arg-type]
        records = [
            payloads.FinishRecord(
                id=o.claimed.id,
                channel=o.claimed.channel,
                subscription=o.claimed.subscription,
                attempt=o.claimed.attempts,
                outcome=o.outcome,
                error=o.error,
                alerts=[self._finish_alert(a, o, at) for a in o.claimed.alerts],
                retry_at=o.retry_at,
                # The script writes the dead letters in the same call, unless they were above.
                dead_stream=None if self.separate_ack else o.dead_stream,
                instead=o.instead,
            )
            for o in outcomes
        ]
        args = payloads.finish_args(self.keys.templates, records, at=at, retention=self.retention, ms=ms)
        first = outcomes[0].claimed
        payloads.read_finish(await self._finish(keys=[self.keys.due(first.channel)], args=args))

    def _finish_alert(self, alert: Alert, o: SendOutcome, at: str) -> payloads.FinishAlert:
        written_by_script = o.outcome == "dead" and o.dead_stream and not self.separate_ack
        fields = self.dead_letter(alert, o.claimed, o.error, at) if written_by_script else None
        return payloads.FinishAlert(alert.alert_id, alert.rule_id, alert.report_id, fields)

    @staticmethod
    def dead_letter(alert: Alert, claimed: Claimed, error: str | None, at: str) -> dict[str, str]:
        """The fields of an alert's dead letter: the alert, then ``dead.*`` saying why."""
        return {
            "alert": alert.model_dump_json(exclude_none=True), "dead.stage": "notify",
            "dead.reason": error or "", "dead.deliveries": str(claimed.attempts),
            "dead.subscription": claimed.subscription, "dead.channel": claimed.channel,
            "dead.delivery": claimed.id, "dead.at": at,
        }  # fmt: skip

    # --- reading, for ``tradewatch alerts``

    async def recent(self, limit: int) -> list[tuple[str, float]]:
        rows: list[Any] = await self.redis.zrevrange(self.keys.recent, 0, limit - 1, withscores=True)
        return [(as_text(a), float(s)) for a, s in rows]

    async def alert(self, alert_id: str) -> Alert | None:
        raw = await self.redis.get(self.keys.alert(alert_id))
        return Alert.model_validate_json(raw) if raw else None

    async def history(self, alert_id: str) -> list[dict[str, Any]]:
        rows = await self.redis.lrange(self.keys.history(alert_id), 0, -1)
        return [json.loads(r) for r in rows]

    async def delivery(self, delivery_id: str) -> dict[str, str]:
        raw: dict[Any, Any] = await self.redis.hgetall(self.keys.delivery(delivery_id))
        return {as_text(k): as_text(v) for k, v in raw.items()}
