"""Store a batch's effect only for the entries this consumer still owns, atomically.

A worker that stalls longer than ``reclaim_idle`` (a full stderr pipe, a long GC pause, a frozen
VM) loses its pending entries to another consumer's XAUTOCLAIM. When it wakes up, a plain
``MULTI: XADD alerts ...; XACK ...`` would publish the batch's alerts a second time: XACK of an
entry claimed by someone else still succeeds. This script checks, inside the server and in the
same atomic step as the writes, that each entry is still pending *for this consumer*
(``XPENDING stream group id id 1 consumer``); it writes the effects of those entries and acks
them, and drops the rest, which their new owner handles. The alerts keep their deterministic
ids, so even a repeat that slipped through would be dropped by the notifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import redis.asyncio as aredis

from services.wire import as_text

# KEYS[1]: the input stream; KEYS[2..]: the streams written to.
# ARGV: group, consumer, number of entries, then per entry: its id, the number of writes, and per
# write: the KEYS index of its stream, the number of field/value items, those items.
_COMMIT_OWNED = """
local group, consumer = ARGV[1], ARGV[2]
local n = tonumber(ARGV[3])
local i = 4
local owned = {}
for _ = 1, n do
  local id = ARGV[i]
  local writes = tonumber(ARGV[i + 1])
  i = i + 2
  local mine = #redis.call('XPENDING', KEYS[1], group, id, id, 1, consumer) > 0
  for _ = 1, writes do
    local key = KEYS[tonumber(ARGV[i])]
    local items = tonumber(ARGV[i + 1])
    i = i + 2
    if mine then
      local args = {key, '*'}
      for f = 0, items - 1 do args[#args + 1] = ARGV[i + f] end
      redis.call('XADD', unpack(args))
    end
    i = i + items
  end
  if mine then owned[#owned + 1] = id end
end
-- XACK in slices: unpack() is limited to a few thousand values.
for s = 1, #owned, 500 do
  redis.call('XACK', KEYS[1], group, unpack(owned, s, math.min(s + 499, #owned)))
end
return owned
"""

Fields = Mapping[str, str] | Mapping[bytes, bytes]


@dataclass
class OwnedBatch:
    """The writes each entry of a batch causes, to be committed only where the entry is still ours."""

    stream: str
    group: str
    consumer: str
    _entries: dict[str, list[tuple[str, Fields]]] = field(default_factory=dict)

    def entry(self, entry_id: str) -> None:
        """Register an entry (to be acked if owned) even when it writes nothing."""
        self._entries.setdefault(entry_id, [])

    def add(self, entry_id: str, stream: str, fields: Fields) -> None:
        self._entries.setdefault(entry_id, []).append((stream, fields))

    async def commit(self, redis: aredis.Redis) -> set[str]:
        """Write and ack the owned entries in one atomic script; returns the ids that were ours."""
        if not self._entries:
            return set()
        keys = [self.stream]
        index: dict[str, int] = {}
        args: list[str | bytes | int] = [self.group, self.consumer, len(self._entries)]
        for entry_id, writes in self._entries.items():
            args += [entry_id, len(writes)]
            for stream, fields in writes:
                if stream not in index:
                    keys.append(stream)
                    index[stream] = len(keys)
                items: list[str | bytes] = [x for pair in fields.items() for x in pair]
                args += [index[stream], len(items), *items]
        script = redis.register_script(_COMMIT_OWNED)
        owned = await script(keys=keys, args=args)
        return {as_text(i) for i in owned}
