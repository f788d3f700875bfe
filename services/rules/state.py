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

FREQUENCY = """
local events, seen, decisions = KEYS[1], KEYS[2], KEYS[3]
local rid, now, window, threshold = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local prior = redis.call('HGET', decisions, rid)
if prior then return prior end
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
local decision
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
return decision
"""

NEW_TERM = """
local rid = ARGV[1]
local new = {}
for i = 2, #ARGV do
  local term = ARGV[i]
  if redis.call('HSETNX', KEYS[1], term, rid) == 1 or redis.call('HGET', KEYS[1], term) == rid then
    table.insert(new, term)
  end
end
return new
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
    async with redis.pipeline(transaction=False) as pipe:
        for p in pendings:
            if p.kind == "frequency":
                keys = frequency_keys(names, p)
                pipe.eval(FREQUENCY, len(keys), *keys, p.report_id, at, int(p.window * 1000), p.count)
            else:
                pipe.eval(NEW_TERM, 1, term_key(names, p), p.report_id, *p.terms)
        replies = await pipe.execute()
    decisions = []
    for p, reply in zip(pendings, replies, strict=True):
        if p.kind == "frequency":
            decisions.append(_decision(reply))
        else:
            new = tuple(t.decode() if isinstance(t, bytes) else str(t) for t in reply)
            decisions.append(Decision(fire=bool(new), new_terms=new))
    return decisions
