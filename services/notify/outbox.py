"""The notifier's state in Redis: accepted alerts, open messages, the send schedule, history.

Keys, under ``<ns>:notify:``::

    alert:<alert id>                 the alert as JSON (kept for the history retention)
    accepted:<alert id>:<sub>        this subscription has taken the alert (a repeat is dropped)
    dedup:<sub>:<dedup key>          the alert id that opened the re-alert window (expires with it)
    open:<sub>:<channel>:<bucket>    the message still collecting alerts for this bucket
    delivery:<id>                    one message for one channel: subscription, channel, state,
                                     attempts, last error, times (state: open, sending, retry, sent, dead)
    delivery:<id>:alerts             the alert ids in it, in arrival order
    due:<channel>                    sorted set: delivery id -> when to send it next
    history:<alert id>               what happened to the alert, one JSON event per entry
    recent                           sorted set: alert id -> when it arrived (``alerts list``)

``accept`` stores a batch's routing decisions and acks its stream entries in one script, so an
alert is acked exactly when its messages are durably queued. ``claim`` takes a due message for
sending and leases it (its score moves to now + lease), so a replica that dies mid-send leaves
it to be sent again after the lease: only that one message can repeat. ``finish`` records the
outcome right after the send.

The scripts build key names from the namespace. On a Redis Cluster (or with partitions) that
namespace carries one hash tag (``<ns>:{notify}``, see ``StreamNames.notify_namespace``), so every
key a script touches hashes to one slot; each script declares one of its keys (KEYS[1]) so that a
cluster client routes it to that slot. The alert stream partitions live on other slots: there
``accept`` acks after its script (``separate_ack``). That is safe because ``accept`` is idempotent
(``accepted:<alert>:<sub>`` is set once): a crash between the two redelivers the entry, which is
then counted as a repeat, never queued twice.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aredis

from schemas.alert import Alert
from services.notify.silences import text

_ACCEPT = """
local p = cjson.decode(ARGV[1])
local P = p.prefix .. ':notify:'
local counts = {queued = 0, silenced = 0, deduplicated = 0, repeated = 0, routed_nowhere = 0}
local function hist(aid, ev)
  ev.at = p.now_iso
  local k = P .. 'history:' .. aid
  redis.call('RPUSH', k, cjson.encode(ev))
  redis.call('EXPIRE', k, p.retention)
end
for _, it in ipairs(p.items) do
  local aid = it.aid
  local fresh = redis.call('EXISTS', P .. 'alert:' .. aid) == 0
  redis.call('SET', P .. 'alert:' .. aid, it.alert, 'EX', p.retention)
  if fresh then
    redis.call('ZADD', P .. 'recent', p.now, aid)
    if #it.subs == 0 then
      hist(aid, {event = 'routed nowhere'})
      counts.routed_nowhere = counts.routed_nowhere + 1
    end
  end
  for _, s in ipairs(it.subs) do
    local acc = P .. 'accepted:' .. aid .. ':' .. s.name
    if not redis.call('SET', acc, p.now_iso, 'NX', 'EX', p.dedup_retention) then
      counts.repeated = counts.repeated + 1
    elseif s.silence ~= '' then
      redis.call('HINCRBY', P .. 'silenced', s.silence, 1)
      hist(aid, {event = 'silenced', subscription = s.name, detail = s.silence})
      counts.silenced = counts.silenced + 1
    else
      local dk = P .. 'dedup:' .. s.name .. ':' .. s.dedup_key
      local prev = false
      if s.window > 0 then prev = redis.call('GET', dk) end
      if prev and prev ~= aid then
        hist(aid, {event = 'deduplicated', subscription = s.name, detail = 'same case as ' .. prev})
        counts.deduplicated = counts.deduplicated + 1
      else
        if s.window > 0 then redis.call('SET', dk, aid, 'EX', s.window) end
        for _, c in ipairs(s.channels) do
          local ok = P .. 'open:' .. s.name .. ':' .. c.ch .. ':' .. s.bucket
          local did = redis.call('GET', ok)
          if not did then
            did = c.new_id
            redis.call('SET', ok, did)
            redis.call('HSET', P .. 'delivery:' .. did, 'subscription', s.name, 'channel', c.ch,
              'bucket', s.bucket, 'open_key', ok, 'state', 'open', 'attempts', 0,
              'created', p.now_iso, 'due', s.due)
            redis.call('ZADD', P .. 'due:' .. c.ch, s.due, did)
          end
          redis.call('RPUSH', P .. 'delivery:' .. did .. ':alerts', aid)
          hist(aid, {event = 'queued', subscription = s.name, channel = c.ch, delivery = did})
        end
        counts.queued = counts.queued + 1
      end
    end
  end
end
if #p.ack > 0 then redis.call('XACK', p.stream, p.group, unpack(p.ack)) end
redis.call('ZREMRANGEBYSCORE', P .. 'recent', '-inf', p.now - p.retention)
return cjson.encode(counts)
"""

_CLAIM = """
local P = ARGV[1] .. ':notify:'
local ch, did, now, lease = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local due = P .. 'due:' .. ch
local score = redis.call('ZSCORE', due, did)
if not score or tonumber(score) > now then return false end
local d = P .. 'delivery:' .. did
if redis.call('EXISTS', d) == 0 then
  redis.call('ZREM', due, did)
  return false
end
local ok = redis.call('HGET', d, 'open_key')
if ok and redis.call('GET', ok) == did then redis.call('DEL', ok) end
redis.call('ZADD', due, now + lease, did)
redis.call('HSET', d, 'state', 'sending')
return redis.call('HINCRBY', d, 'attempts', 1)
"""


@dataclass(frozen=True)
class Queued:
    """One alert for one subscription, to be accepted: its decision and its channels."""

    subscription: str
    silence: str | None
    window: int
    dedup_key: str
    bucket: str
    due: float
    channels: list[str]


@dataclass
class Claimed:
    id: str
    channel: str
    subscription: str
    attempts: int
    alerts: list[Alert]
    missing: int


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


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
        self.ns = namespace
        self.prefix = f"{namespace}:notify:"
        self.retention = max(1, int(retention))
        self.dedup_retention = max(1, int(dedup_retention))
        self._accept = redis.register_script(_ACCEPT)
        self._claim = redis.register_script(_CLAIM)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def accept(
        self,
        items: list[tuple[Alert, list[Queued]]],
        ack: list[str],
        stream: str,
        group: str,
        now: float,
    ) -> dict[str, int]:
        payload: dict[str, Any] = {
            "prefix": self.ns, "now": now, "now_iso": iso(now), "retention": self.retention,
            "dedup_retention": self.dedup_retention, "stream": stream, "group": group,
            "ack": [] if self.separate_ack else ack,
            "items": [
                {
                    "aid": alert.alert_id,
                    "alert": alert.model_dump_json(exclude_none=True),
                    "subs": [
                        {
                            "name": q.subscription, "silence": q.silence or "", "window": q.window,
                            "dedup_key": q.dedup_key, "bucket": q.bucket, "due": q.due,
                            "channels": [{"ch": c, "new_id": f"d-{uuid.uuid4().hex[:16]}"} for c in q.channels],
                        }
                        for q in queued
                    ],
                }
                for alert, queued in items
            ],
        }  # fmt: skip
        # cjson turns an empty list into an empty object; both iterate as nothing in Lua.
        reply = await self._accept(keys=[self.key("recent")], args=[json.dumps(payload, ensure_ascii=False)])
        if self.separate_ack and ack:
            await self.redis.xack(stream, group, *ack)
        counts: dict[str, int] = json.loads(reply)
        return counts

    async def due(self, channel: str, now: float, count: int) -> list[str]:
        ids = await self.redis.zrangebyscore(self.key("due", channel), "-inf", now, start=0, num=count)
        return [text(i) for i in ids]

    async def next_due(self, channel: str) -> float | None:
        first = await self.redis.zrange(self.key("due", channel), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def outstanding(self, channels: list[str]) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for c in channels:
                pipe.zcard(self.key("due", c))
            sizes = await pipe.execute()
        return sum(int(s) for s in sizes)

    async def claim(self, channel: str, delivery_id: str, now: float, lease: float) -> Claimed | None:
        # The claim first, then the reads of what it claimed. (One MULTI for both saved a round
        # trip on a single server, but a cluster client cannot run a script inside a transaction.)
        attempts = await self._claim(
            keys=[self.key("due", channel)], args=[self.ns, channel, delivery_id, now, lease]
        )
        if not attempts:
            return None
        d = self.key("delivery", delivery_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(d, "subscription")
            pipe.lrange(f"{d}:alerts", 0, -1)
            sub, ids = await pipe.execute()
        unique = list(dict.fromkeys(i.decode() for i in ids))
        raw = await self.redis.mget([self.key("alert", i) for i in unique]) if unique else []
        alerts = [Alert.model_validate_json(r) for r in raw if r is not None]
        return Claimed(
            id=delivery_id,
            channel=channel,
            subscription=sub.decode() if sub else "",
            attempts=int(attempts),
            alerts=alerts,
            missing=len(unique) - len(alerts),
        )

    def _history(self, pipe: Any, alert_id: str, event: dict[str, Any]) -> None:
        key = self.key("history", alert_id)
        pipe.rpush(key, json.dumps(event, ensure_ascii=False))
        pipe.expire(key, self.retention)

    async def finish(
        self,
        claimed: Claimed,
        outcome: str,
        now: float,
        *,
        error: str | None = None,
        retry_at: float | None = None,
        dead_stream: str | None = None,
        ms: float | None = None,
    ) -> None:
        """Record ``sent``, ``failed`` (to be retried at ``retry_at``) or ``dead``, in one transaction."""
        d = self.key("delivery", claimed.id)
        due = self.key("due", claimed.channel)
        at = iso(now)
        separate_dead = outcome == "dead" and dead_stream and self.separate_ack
        if separate_dead and dead_stream:
            # The dead-letter stream is an alert partition, on another slot than this state:
            # written first, so a crash before the record below repeats it rather than loses it.
            for alert in claimed.alerts:
                await self.redis.xadd(dead_stream, self._dead_fields(alert, claimed, error, at))  # type: ignore[arg-type]
        async with self.redis.pipeline(transaction=True) as pipe:
            fields: dict[str, Any] = {"state": {"failed": "retry"}.get(outcome, outcome), "updated": at}
            fields["last_error"] = error or ""
            if outcome == "sent":
                fields["sent_at"] = at
            if outcome == "failed" and retry_at is not None:
                fields["due"] = retry_at
                pipe.zadd(due, {claimed.id: retry_at})
            else:
                pipe.zrem(due, claimed.id)
                pipe.expire(d, self.retention)
                pipe.expire(f"{d}:alerts", self.retention)
            pipe.hset(d, mapping=fields)  # type: ignore[arg-type]
            for alert in claimed.alerts:
                event: dict[str, Any] = {
                    "at": at, "event": outcome, "subscription": claimed.subscription,
                    "channel": claimed.channel, "delivery": claimed.id, "attempt": claimed.attempts,
                }  # fmt: skip
                if error:
                    event["detail"] = error
                if retry_at is not None and outcome == "failed":
                    event["retry_at"] = iso(retry_at)
                if ms is not None:
                    event["ms"] = ms
                self._history(pipe, alert.alert_id, event)
                pipe.xadd(
                    f"{self.ns}:deliveries",
                    {
                        "alert_id": alert.alert_id, "rule_id": alert.rule_id, "report_id": alert.report_id,
                        "subscription": claimed.subscription, "channel": claimed.channel,
                        "delivery": claimed.id, "attempt": str(claimed.attempts),
                        "outcome": outcome, "error": error or "", "at": at,
                    },
                    maxlen=100_000, approximate=True,
                )  # fmt: skip
                if outcome == "dead" and dead_stream and not separate_dead:
                    pipe.xadd(
                        dead_stream,
                        {
                            "alert": alert.model_dump_json(exclude_none=True), "dead.stage": "notify",
                            "dead.reason": error or "", "dead.deliveries": str(claimed.attempts),
                            "dead.subscription": claimed.subscription, "dead.channel": claimed.channel,
                            "dead.delivery": claimed.id, "dead.at": at,
                        },
                    )  # fmt: skip
            await pipe.execute()

    @staticmethod
    def _dead_fields(alert: Alert, claimed: Claimed, error: str | None, at: str) -> dict[str, str]:
        return {
            "alert": alert.model_dump_json(exclude_none=True), "dead.stage": "notify",
            "dead.reason": error or "", "dead.deliveries": str(claimed.attempts),
            "dead.subscription": claimed.subscription, "dead.channel": claimed.channel,
            "dead.delivery": claimed.id, "dead.at": at,
        }  # fmt: skip

    # --- reading, for ``tradewatch alerts``

    async def recent(self, limit: int) -> list[tuple[str, float]]:
        rows: list[Any] = await self.redis.zrevrange(self.key("recent"), 0, limit - 1, withscores=True)
        return [(text(a), float(s)) for a, s in rows]

    async def alert(self, alert_id: str) -> Alert | None:
        raw = await self.redis.get(self.key("alert", alert_id))
        return Alert.model_validate_json(raw) if raw else None

    async def history(self, alert_id: str) -> list[dict[str, Any]]:
        rows = await self.redis.lrange(self.key("history", alert_id), 0, -1)
        return [json.loads(r) for r in rows]

    async def delivery(self, delivery_id: str) -> dict[str, str]:
        raw: dict[Any, Any] = await self.redis.hgetall(self.key("delivery", delivery_id))
        return {text(k): text(v) for k, v in raw.items()}
