"""The state of rules over time, kept in Redis by Lua scripts (one atomic script per decision).

The same contract as ``temporal.MemoryState``; see ``services/rules/temporal.py``. Each decision
is stored under the report id before the script returns, so the rules stage can apply state,
then publish and ack in a second transaction: a crash between the two means a redelivery, and
the redelivered report gets the stored decision back instead of counting twice. Keys carry a
hash tag (``{...}``) so one decision's keys share a slot on Redis Cluster.

Keys, under the namespace:
- ``rules:freq:{<rule>:<group hash>}:events``  ZSET report id -> event ms, counted and not yet used
- ``rules:freq:{<rule>:<group hash>}:seen``    ZSET report id -> arrival ms, every report kept
- ``rules:freq:{<rule>:<group hash>}:decisions`` HASH report id -> decision (JSON)
- ``rules:term:{<rule>}:<field>``              HASH value -> id of the report that owns it
- ``rules:term:{<rule>}:<field>:at``           HASH value -> the owner's event time (ms)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime

import redis.asyncio as aredis

from schemas.streams import StreamNames
from services.rules.temporal import DEFAULT_HORIZON, Decision, Pending, millis
from services.wire import as_text

# Both scripts take every decision of one key set (one rule and group) in a batch, in order:
# one script call per key set instead of one per report, with the same result as one call
# after another, and still one hash slot per call on Redis Cluster. Each report comes with its
# event time (ms); the contract (windows by event time, the watermark, new terms by earliest
# event time) is written in services/rules/temporal.py, and MemoryState is its model.

# KEYS: events, seen, decisions; ARGV: window, threshold, keep (window + horizon), then per
# decision the report id, its event time and its arrival (ms).
FREQUENCY = """
local events, seen, decisions = KEYS[1], KEYS[2], KEYS[3]
local window, threshold, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for a = 4, #ARGV, 3 do
  local rid, t, arrived = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local decision = redis.call('HGET', decisions, rid)
  if not decision then
    local mark = arrived
    local top = redis.call('ZRANGE', seen, -1, -1, 'WITHSCORES')
    if top[2] and tonumber(top[2]) > mark then mark = tonumber(top[2]) end
    local cutoff = mark - keep
    local old = redis.call('ZRANGEBYSCORE', seen, '-inf', cutoff)
    for i = 1, #old, 500 do
      local chunk = {unpack(old, i, math.min(i + 499, #old))}
      redis.call('HDEL', decisions, unpack(chunk))
      redis.call('ZREM', events, unpack(chunk))
    end
    redis.call('ZREMRANGEBYSCORE', seen, '-inf', cutoff)
    redis.call('ZADD', events, t, rid)
    redis.call('ZADD', seen, arrived, rid)
    local near = redis.call('ZRANGEBYSCORE', events, '(' .. string.format('%d', t - window),
      '(' .. string.format('%d', t + window), 'WITHSCORES')
    local ids, at = {}, {}
    for i = 1, #near, 2 do
      ids[#ids + 1] = near[i]
      at[#at + 1] = tonumber(near[i + 1])
    end
    -- the earliest of the fullest spans shorter than the window that contain t
    local bs, be, j = 1, 1, 1
    for i = 1, #at do
      if at[i] > t then break end
      if at[i] > t - window then
        if j < i then j = i end
        while j <= #at and at[j] < at[i] + window do j = j + 1 end
        if j - i > be - bs then bs, be = i, j end
      end
    end
    local n = be - bs
    if n >= threshold then
      local used, times = {}, {}
      for i = bs, be - 1 do
        used[#used + 1] = ids[i]
        times[#times + 1] = at[i]
      end
      redis.call('ZREM', events, unpack(used))
      decision = cjson.encode({fire = true, count = n, reports = used, times = times})
    else
      decision = cjson.encode({fire = false, count = n})
    end
    redis.call('HSET', decisions, rid, decision)
  end
  out[#out + 1] = decision
end
redis.call('PEXPIRE', events, keep)
redis.call('PEXPIRE', seen, keep)
redis.call('PEXPIRE', decisions, keep)
return out
"""

# KEYS: the term hash (value -> owner report id), its event times (value -> ms); ARGV: per
# decision, the report id, its event time, the number of terms, the terms. Returns, per
# decision, the terms new to it. An owner without a time (written before event time) keeps its terms.
NEW_TERM = """
local out = {}
local a = 1
while a <= #ARGV do
  local rid, t, n = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local new = {}
  for i = a + 3, a + 2 + n do
    local term = ARGV[i]
    local owner = redis.call('HGET', KEYS[1], term)
    local take = false
    if not owner then
      take = true
    elseif owner == rid then
      table.insert(new, term)
    else
      local since = redis.call('HGET', KEYS[2], term)
      if since and (t < tonumber(since) or (t == tonumber(since) and rid < owner)) then take = true end
    end
    if take then
      redis.call('HSET', KEYS[1], term, rid)
      redis.call('HSET', KEYS[2], term, string.format('%d', t))
      table.insert(new, term)
    end
  end
  out[#out + 1] = new
  a = a + 3 + n
end
return out
"""


def frequency_keys(names: StreamNames, pending: Pending) -> list[str]:
    group = hashlib.sha256(pending.group.encode()).hexdigest()[:16]
    base = names.key("rules", "freq", f"{{{pending.rule_id}:{group}}}")
    return [f"{base}:events", f"{base}:seen", f"{base}:decisions"]


def term_key(names: StreamNames, pending: Pending) -> str:
    return names.key("rules", "term", f"{{{pending.rule_id}}}", pending.group)


def _decision(raw: bytes | str) -> Decision:
    data = json.loads(raw)
    reports = data.get("reports") or []  # Lua's cjson writes an empty table as {}
    times = data.get("times") or []
    return Decision(
        bool(data["fire"]),
        int(data["count"]),
        tuple(reports) if isinstance(reports, list) else (),
        times=tuple(int(t) for t in times) if isinstance(times, list) else (),
    )


async def decide(
    redis: aredis.Redis,
    names: StreamNames,
    pendings: Sequence[Pending],
    at: Sequence[datetime] | datetime,
    horizon: float = DEFAULT_HORIZON,
    arrived: Sequence[datetime] | None = None,
) -> list[Decision]:
    """Apply every pending alert's state in one round trip; decisions in the same order.
    ``at``: each pending's report's event time (one time: the same for all); ``arrived``: when
    each reached the report stream (default: its event time)."""
    if not pendings:
        return []
    times = [millis(at)] * len(pendings) if isinstance(at, datetime) else [millis(t) for t in at]
    arrivals = times if arrived is None else [millis(t) for t in arrived]
    # Pendings on the same keys (one rule and group), in batch order: one script call each.
    groups: dict[tuple[str, ...], list[int]] = {}
    for position, p in enumerate(pendings):
        if p.kind == "frequency":
            key = ("frequency", *frequency_keys(names, p), repr(p.window), str(p.count))
        else:
            key = ("new_term", term_key(names, p))
        groups.setdefault(key, []).append(position)
    async with redis.pipeline(transaction=False) as pipe:
        for key, positions in groups.items():
            if key[0] == "frequency":
                first = pendings[positions[0]]
                window = int(first.window * 1000)
                args: list[str | int] = [window, first.count, window + int(horizon * 1000)]
                for i in positions:
                    args += [pendings[i].report_id, times[i], arrivals[i]]
                pipe.eval(FREQUENCY, 3, *key[1:4], *args)
            else:
                args = []
                for i in positions:
                    args += [pendings[i].report_id, times[i], len(pendings[i].terms), *pendings[i].terms]
                pipe.eval(NEW_TERM, 2, key[1], f"{key[1]}:at", *args)
        replies = await pipe.execute()
    decisions: list[Decision | None] = [None] * len(pendings)
    for (kind, *_), positions, reply in zip(groups, groups.values(), replies, strict=True):
        for i, one in zip(positions, reply, strict=True):
            if kind == "frequency":
                decisions[i] = _decision(one)
            else:
                new = tuple(as_text(t) for t in one)
                decisions[i] = Decision(fire=bool(new), new_terms=new)
    return [d for d in decisions if d is not None]
