"""A batch's outcome stored in one script: alerts added, poison dead-lettered, entries acked.

One ``EVALSHA`` per batch instead of a MULTI/EXEC with one queued command per alert: the same
all-or-nothing effect (a script runs atomically), without a reply per queued command to read
back. The three streams of one partition share a hash tag, so the script's keys share a slot
on Redis Cluster too.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aredis

from schemas.streams import ALERT_FIELD

_STORE = """
local alerts, reports, dead = KEYS[1], KEYS[2], KEYS[3]
local group, field = ARGV[1], ARGV[2]
local n = tonumber(ARGV[3])
local i = 4
for _ = 1, n do
  redis.call('XADD', alerts, '*', field, ARGV[i])
  i = i + 1
end
local buried = tonumber(ARGV[i])
i = i + 1
for _ = 1, buried do
  local count = tonumber(ARGV[i])
  redis.call('XADD', dead, '*', unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
local acked = 0
while i <= #ARGV do
  local last = math.min(i + 499, #ARGV)
  acked = acked + redis.call('XACK', reports, group, unpack(ARGV, i, last))
  i = last + 1
end
return acked
"""


class BatchStore:
    def __init__(self, redis: aredis.Redis, alerts: str, reports: str, dead: str, group: str) -> None:
        self.keys = [alerts, reports, dead]
        self.group = group
        self._script = redis.register_script(_STORE)

    async def store(
        self,
        alerts: Sequence[str],
        dead: Sequence[dict[bytes, bytes]],
        ack: Sequence[str],
    ) -> int:
        """Add ``alerts`` (JSON), dead-letter ``dead`` (fields), ack ``ack``; the number acked."""
        args: list[str | bytes | int] = [self.group, ALERT_FIELD, len(alerts), *alerts, len(dead)]
        for fields in dead:
            args.append(len(fields) * 2)
            for key, value in fields.items():
                args += (key, value)
        args += ack
        return int(await self._script(keys=self.keys, args=args))
