"""The state of rules over time, kept in Redis by Lua scripts (one atomic script per decision).

The same contract as ``temporal.MemoryState``; see ``services/rules/temporal.py``. Each decision
is stored under the report id before the script returns, so the rules stage can apply state,
then publish and ack in a second transaction: a crash between the two means a redelivery, and
the redelivered report gets the stored decision back instead of counting twice. Keys carry a
hash tag (``{...}``) so one decision's keys share a slot on Redis Cluster.

Keys, under the namespace:
- ``rules:freq:{<rule>:<group hash>}:events``  ZSET report id -> ms, the current count
- ``rules:freq:{<rule>:<group hash>}:seen``    ZSET report id -> ms, every report in the window
- ``rules:freq:{<rule>:<group hash>}:decisions`` HASH report id -> decision (JSON)
- ``rules:term:{<rule>}:<field>``              HASH value -> id of the report that introduced it
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime

import redis.asyncio as aredis

from schemas.streams import StreamNames
from services.rules.temporal import Decision, Pending, millis
from services.wire import as_text

# Both scripts take every decision of one key set (one rule and group) in a batch, in order:
# one script call per key set instead of one per report, with the same result as one call
# after another, and still one hash slot per call on Redis Cluster.

# KEYS: events, seen, decisions; ARGV: now, window, threshold, then one report id per decision.
FREQUENCY = """
local events, seen, decisions = KEYS[1], KEYS[2], KEYS[3]
local now, window, threshold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for a = 4, #ARGV do
  local rid = ARGV[a]
  local decision = redis.call('HGET', decisions, rid)
  if not decision then
    local cutoff = now - window
    local old = redis.call('ZRANGEBYSCORE', seen, '-inf', cutoff)
    for i = 1, #old, 500 do
      redis.call('HDEL', decisions, unpack(old, i, math.min(i + 499, #old)))
    end
    redis.call('ZREMRANGEBYSCORE', seen, '-inf', cutoff)
    redis.call('ZREMRANGEBYSCORE', events, '-inf', cutoff)
    redis.call('ZADD', events, now, rid)
    redis.call('ZADD', seen, now, rid)
    local n = redis.call('ZCARD', events)
    if n >= threshold then
      decision = cjson.encode({fire = true, count = n, reports = redis.call('ZRANGE', events, 0, -1)})
      redis.call('DEL', events)
    else
      decision = cjson.encode({fire = false, count = n})
      redis.call('PEXPIRE', events, window)
    end
    redis.call('HSET', decisions, rid, decision)
    redis.call('PEXPIRE', seen, window)
    redis.call('PEXPIRE', decisions, window)
  end
  out[#out + 1] = decision
end
return out
"""

# KEYS: the term hash; ARGV: per decision, the report id, the number of terms, the terms.
# Returns, per decision, the terms new to it.
NEW_TERM = """
local out = {}
local a = 1
while a <= #ARGV do
  local rid, n = ARGV[a], tonumber(ARGV[a + 1])
  local new = {}
  for i = a + 2, a + 1 + n do
    local term = ARGV[i]
    if redis.call('HSETNX', KEYS[1], term, rid) == 1 or redis.call('HGET', KEYS[1], term) == rid then
      table.insert(new, term)
    end
  end
  out[#out + 1] = new
  a = a + 2 + n
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
    return Decision(
        bool(data["fire"]), int(data["count"]), tuple(reports) if isinstance(reports, list) else ()
    )


async def decide(
    redis: aredis.Redis, names: StreamNames, pendings: Sequence[Pending], now: datetime
) -> list[Decision]:
    """Apply every pending alert's state in one round trip; decisions in the same order."""
    if not pendings:
        return []
    at = millis(now)
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
                rids = [pendings[i].report_id for i in positions]
                pipe.eval(FREQUENCY, 3, *key[1:4], at, int(first.window * 1000), first.count, *rids)
            else:
                args: list[str | int] = []
                for i in positions:
                    args += [pendings[i].report_id, len(pendings[i].terms), *pendings[i].terms]
                pipe.eval(NEW_TERM, 1, key[1], *args)
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
