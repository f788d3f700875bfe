"""The notifier's state in Redis: accepted alerts, open messages, the send schedule, history.

Keys, under ``<ns>:notify:``::

    alert:<alert id>                 the alert as JSON (kept for the history retention)
    accepted:<alert id>:<sub>        this subscription has taken the alert (a repeat is dropped)
    gave-up:<alert id>:<sub>         channels that dead-lettered it: a replay queues it for these
    dedup:<sub>:<dedup key>          the alert id that opened the re-alert window (expires with it)
    open:<sub>:<channel>:<bucket>    the message still collecting alerts for this bucket
    delivery:<id>                    one message for one channel: subscription, channel, state,
                                     attempts, last error, times (state: open, sending, retry, sent, dead)
    delivery:<id>:alerts             the alert ids in it, in arrival order
    due:<channel>                    sorted set: delivery id -> when to send it next
    history:<alert id>               what happened to the alert, one JSON event per entry
    recent                           sorted set: alert id -> when it arrived (``alerts list``)

``accept`` stores a batch's routing decisions and acks its stream entries in one script, so an
alert is acked exactly when its messages are durably queued. ``claim`` takes due messages for
sending, with their alerts, and leases them (their score moves to now + lease), so a replica
that dies mid-send leaves them to be sent again after the lease: only the messages of the sends
in flight can repeat. Messages of one subscription due at once are claimed together, to go out
as one send (a backlog is coalesced). ``finish`` records each message's outcome right after
its send. Each is one script: one round trip however many messages and alerts.

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
from services.notify.silences import Silence, parse_silences, text

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
  redis.call('SET', P .. 'alert:' .. aid, ARGV[it.arg], 'EX', p.retention)
  if fresh then
    redis.call('ZADD', P .. 'recent', p.now, aid)
    if #it.subs == 0 then
      hist(aid, {event = 'routed nowhere'})
      counts.routed_nowhere = counts.routed_nowhere + 1
    end
  end
  for _, s in ipairs(it.subs) do
    local acc = P .. 'accepted:' .. aid .. ':' .. s.name
    local channels = s.channels
    local fresh_sub = redis.call('SET', acc, p.now_iso, 'NX', 'EX', p.dedup_retention)
    if not fresh_sub then
      -- Taken before: a repeat, unless a channel gave up on it (dead-lettered, now replayed):
      -- then it is queued again for those channels only, never for one that had it.
      local gave_up = P .. 'gave-up:' .. aid .. ':' .. s.name
      local again = {}
      for _, c in ipairs(s.channels) do
        if redis.call('SREM', gave_up, c.ch) == 1 then table.insert(again, c) end
      end
      channels = again
    end
    if #channels == 0 then
      counts.repeated = counts.repeated + 1
    elseif s.silence ~= '' then
      redis.call('HINCRBY', P .. 'silenced', s.silence, 1)
      hist(aid, {event = 'silenced', subscription = s.name, detail = s.silence})
      counts.silenced = counts.silenced + 1
    else
      local dk = P .. 'dedup:' .. s.name .. ':' .. s.dedup_key
      local prev = false
      if s.window > 0 and fresh_sub then prev = redis.call('GET', dk) end
      if prev and prev ~= aid then
        hist(aid, {event = 'deduplicated', subscription = s.name, detail = 'same case as ' .. prev})
        counts.deduplicated = counts.deduplicated + 1
      else
        if s.window > 0 then redis.call('SET', dk, aid, 'EX', s.window) end
        for _, c in ipairs(channels) do
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
local p = cjson.decode(ARGV[1])
local P = p.prefix .. ':notify:'
local due = KEYS[1]
local skip = {}
for _, id in ipairs(p.flying) do skip[id] = true end
local units, open, n = {}, {}, 0
local bodies, fetched = {}, {}
for _, did in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', p.now, 'LIMIT', 0, p.scan)) do
  if not skip[did] then
    local d = P .. 'delivery:' .. did
    local sub = redis.call('HGET', d, 'subscription')
    if not sub then
      redis.call('ZREM', due, did)  -- its record is gone (past the retention)
    else
      local unit = open[sub]
      if unit == nil or #unit.messages >= (p.limits[sub] or 1) then
        unit = nil
        if n < p.units then
          n = n + 1
          unit = {subscription = sub, messages = {}}
          units[n] = unit
          open[sub] = unit
        end
      end
      if unit then
        local ok = redis.call('HGET', d, 'open_key')
        if ok and redis.call('GET', ok) == did then redis.call('DEL', ok) end
        redis.call('ZADD', due, string.format('%.17g', p.now + p.lease), did)
        redis.call('HSET', d, 'state', 'sending')
        local attempts = redis.call('HINCRBY', d, 'attempts', 1)
        local aids = redis.call('LRANGE', d .. ':alerts', 0, -1)
        table.insert(unit.messages, {id = did, attempts = attempts, alerts = aids})
        for _, aid in ipairs(aids) do
          if not fetched[aid] then
            fetched[aid] = true
            local body = redis.call('GET', P .. 'alert:' .. aid)
            if body then
              bodies[#bodies + 1] = aid
              bodies[#bodies + 1] = body
            end
          end
        end
      end
    end
  end
end
-- The alerts' JSON as replies of their own (not inside the units' JSON: never escaped), the
-- silences, checked again right before the send, and when the next message is due (a sender
-- with nothing to send sleeps until then), all read in the same call.
local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
local reply = {cjson.encode(units), redis.call('HGETALL', P .. 'silences'), first[2] or ''}
for _, b in ipairs(bodies) do reply[#reply + 1] = b end
return reply
"""


_FINISH = """
local p = cjson.decode(ARGV[1])
local P = p.prefix .. ':notify:'
for _, r in ipairs(p.records) do
  local d = P .. 'delivery:' .. r.id
  local due = P .. 'due:' .. r.channel
  local state = r.outcome
  if state == 'failed' then state = 'retry' end
  if r.outcome == 'silenced' then
    -- A silence holds these alerts of the message: out of it (a retry will not carry them),
    -- counted for the silence; the rest of the message is recorded by its send's own record.
    for _, a in ipairs(r.alerts) do
      redis.call('LREM', d .. ':alerts', 0, a[1])
      redis.call('HINCRBY', P .. 'silenced', r.error, 1)
      local h = P .. 'history:' .. a[1]
      redis.call('RPUSH', h, cjson.encode({at = p.at, event = 'silenced', subscription = r.sub,
        channel = r.channel, delivery = r.id, detail = r.error}))
      redis.call('EXPIRE', h, p.retention)
    end
    if redis.call('LLEN', d .. ':alerts') == 0 then
      redis.call('HSET', d, 'state', 'silenced', 'updated', p.at)
      redis.call('ZREM', due, r.id)
      redis.call('EXPIRE', d, p.retention)
    end
  else
    redis.call('HSET', d, 'state', state, 'updated', p.at, 'last_error', r.error)
    if r.outcome == 'sent' then redis.call('HSET', d, 'sent_at', p.at) end
    if r.retry_at then
      local score = string.format('%.17g', r.retry_at)
      redis.call('HSET', d, 'due', score)
      redis.call('ZADD', due, score, r.id)
    else
      redis.call('ZREM', due, r.id)
      redis.call('EXPIRE', d, p.retention)
      redis.call('EXPIRE', d .. ':alerts', p.retention)
    end
    for i, a in ipairs(r.alerts) do
      local event = {at = p.at, event = r.outcome, subscription = r.sub, channel = r.channel,
                     delivery = r.id, attempt = r.attempt}
      if r.error ~= '' then event.detail = r.error end
      if r.retry_iso then event.retry_at = r.retry_iso end
      if p.ms then event.ms = p.ms end
      local h = P .. 'history:' .. a[1]
      redis.call('RPUSH', h, cjson.encode(event))
      redis.call('EXPIRE', h, p.retention)
      redis.call('XADD', p.prefix .. ':deliveries', 'MAXLEN', '~', 100000, '*',
        'alert_id', a[1], 'rule_id', a[2], 'report_id', a[3], 'subscription', r.sub,
        'channel', r.channel, 'delivery', r.id, 'attempt', string.format('%d', r.attempt),
        'outcome', r.outcome, 'error', r.error, 'at', p.at)
      if r.outcome == 'dead' then
        -- Remembered so that a replay of this dead letter queues it again for this channel, or,
        -- when this channel is gone, for the subscription's channels now that never had it.
        local g = P .. 'gave-up:' .. a[1] .. ':' .. r.sub
        redis.call('SADD', g, r.channel)
        if r.instead then
          local had = {}
          for _, e in ipairs(redis.call('LRANGE', P .. 'history:' .. a[1], 0, -1)) do
            local ok, ev = pcall(cjson.decode, e)
            if ok and ev.channel and ev.subscription == r.sub then had[ev.channel] = true end
          end
          for _, c in ipairs(r.instead) do
            if not had[c] then redis.call('SADD', g, c) end
          end
        end
        redis.call('EXPIRE', g, p.retention)
      end
      if r.dead_stream then
        -- The dead letter's fields come built (Outbox._dead_fields), one list per alert.
        redis.call('XADD', r.dead_stream, '*', unpack(r.dead_fields[i]))
      end
    end
  end
end
return #p.records
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


@dataclass(frozen=True)
class Claim:
    units: list[list[Claimed]]
    """Sends to make, each a list of messages of one subscription."""
    silences: list[Silence]
    next_due: float | None
    """When the first message of the schedule is due (after this claim), if any."""


@dataclass(frozen=True)
class Outcome:
    """What one send did for one of the messages in it."""

    claimed: Claimed
    outcome: str  # sent | failed | dead | silenced (then ``error`` is the silence's id)
    error: str | None = None
    retry_at: float | None = None
    dead_stream: str | None = None
    instead: list[str] | None = None  # dead because the channel is gone: who may take it on replay


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
        self._finish = redis.register_script(_FINISH)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def accept(
        self,
        items: list[tuple[Alert, bytes, list[Queued]]],
        ack: list[str],
        stream: str,
        group: str,
        now: float,
    ) -> dict[str, int]:
        """Queue each alert (with its JSON as it came, already validated) for its routes and ack
        the entries, in one script. The alerts' JSON goes as arguments of their own, not inside
        the payload: nothing is encoded again here or escaped and decoded in the script."""
        payload: dict[str, Any] = {
            "prefix": self.ns, "now": now, "now_iso": iso(now), "retention": self.retention,
            "dedup_retention": self.dedup_retention, "stream": stream, "group": group,
            "ack": [] if self.separate_ack else ack,
            "items": [
                {
                    "aid": alert.alert_id,
                    "arg": n,  # ARGV[n]: the alert's JSON (ARGV[1] is the payload)
                    "subs": [
                        {
                            "name": q.subscription, "silence": q.silence or "", "window": q.window,
                            "dedup_key": q.dedup_key, "bucket": q.bucket, "due": q.due,
                            "channels": [{"ch": c, "new_id": f"d-{uuid.uuid4().hex[:16]}"} for c in q.channels],
                        }
                        for q in queued
                    ],
                }
                for n, (alert, _, queued) in enumerate(items, start=2)
            ],
        }  # fmt: skip
        # cjson turns an empty list into an empty object; both iterate as nothing in Lua.
        args: list[str | bytes] = [json.dumps(payload, ensure_ascii=False), *(raw for _, raw, _ in items)]
        reply = await self._accept(keys=[self.key("recent")], args=args)
        if self.separate_ack and ack:
            await self.redis.xack(stream, group, *ack)
        counts: dict[str, int] = json.loads(reply)
        return counts

    async def queued_channels(self) -> dict[str, int]:
        """Every channel with messages in its schedule, and how many."""
        prefix = self.key("due", "")
        keys = [text(k) async for k in self.redis.scan_iter(match=prefix + "*", count=1000)]
        sizes = [int(await self.redis.zcard(k)) for k in keys]
        return {k.removeprefix(prefix): n for k, n in zip(keys, sizes, strict=True) if n}

    async def outstanding(self, channels: list[str]) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for c in channels:
                pipe.zcard(self.key("due", c))
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
        payload = {
            "prefix": self.ns, "now": now, "lease": lease, "units": units, "limits": limits,
            "flying": flying, "scan": max(64, 4 * units * max(limits.values(), default=1)),
        }  # fmt: skip
        reply = await self._claim(keys=[self.key("due", channel)], args=[json.dumps(payload)])
        plan, silences, upcoming, *bodies = reply
        parsed = {
            text(aid): Alert.model_validate_json(raw)
            for aid, raw in zip(bodies[::2], bodies[1::2], strict=True)
        }
        claimed: list[list[Claimed]] = []
        for unit in json.loads(plan):
            messages = []
            for m in unit["messages"]:
                # An empty Lua table encodes as {}: a message without alert ids.
                unique = list(dict.fromkeys(m["alerts"] or []))
                alerts = [parsed[a] for a in unique if a in parsed]
                messages.append(Claimed(
                    id=m["id"], channel=channel, subscription=unit["subscription"],
                    attempts=int(m["attempts"]), alerts=alerts,
                ))  # fmt: skip
            claimed.append(messages)
        return Claim(claimed, parse_silences(silences[1::2]), float(upcoming) if upcoming else None)

    async def finish(self, outcomes: list[Outcome], now: float, *, ms: float | None = None) -> None:
        """Record what became of messages sent together: ``sent``, ``failed`` (due again at its
        ``retry_at``) or ``dead``, each with a history event per alert and a ``deliveries``
        entry, in one script (atomic on the server, one round trip)."""
        at = iso(now)
        if self.separate_ack:
            # A dead-letter stream is an alert partition, on another slot than this state:
            # written first, so a crash before the record below repeats it rather than loses it.
            for o in outcomes:
                if o.outcome == "dead" and o.dead_stream:
                    for alert in o.claimed.alerts:
                        fields = self._dead_fields(alert, o.claimed, o.error, at)
                        await self.redis.xadd(o.dead_stream, fields)  # type: ignore[arg-type]
        records = []
        for o in outcomes:
            record: dict[str, Any] = {
                "id": o.claimed.id, "channel": o.claimed.channel, "sub": o.claimed.subscription,
                "attempt": o.claimed.attempts, "outcome": o.outcome, "error": o.error or "",
                "alerts": [[a.alert_id, a.rule_id, a.report_id] for a in o.claimed.alerts],
            }  # fmt: skip
            # Keys left out rather than null: cjson's null is a truthy value in Lua.
            if o.outcome == "failed" and o.retry_at is not None:
                record |= {"retry_at": o.retry_at, "retry_iso": iso(o.retry_at)}
            if o.outcome == "dead" and o.dead_stream and not self.separate_ack:
                record["dead_stream"] = o.dead_stream
                record["dead_fields"] = [
                    [x for pair in self._dead_fields(alert, o.claimed, o.error, at).items() for x in pair]
                    for alert in o.claimed.alerts
                ]
            if o.outcome == "dead" and o.instead:
                record["instead"] = o.instead
            records.append(record)
        payload: dict[str, Any] = {
            "prefix": self.ns,
            "retention": self.retention,
            "at": at,
            "records": records,
        }
        if ms is not None:
            payload["ms"] = ms
        first = outcomes[0].claimed
        await self._finish(
            keys=[self.key("due", first.channel)], args=[json.dumps(payload, ensure_ascii=False)]
        )

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
