"""Removing entries from the engine's streams by what they are about (a user, a session, a memory).

Streams have no secondary index, so a script walks them server-side in chunks: only the number of
removed entries crosses the wire, not the (often large) entries themselves.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

from core.redis_client import get_redis

# KEYS: stream; ARGV: start id, count, consumer group ("" = none), spec JSON:
#   {"fields": {"<field>": [values...]}, "memory_ids": [ids...]}
# An entry goes when one of its fields has a listed value, or when it is the event of a listed
# memory (its `memory_id` field, or the `data` JSON of an entry that carries the whole event).
# Returns {next start id ("" when done), removed}.
_SCRUB = """
local spec = cjson.decode(ARGV[4])
local wanted = {}
for name, values in pairs(spec.fields) do
  local set = {}
  for _, v in ipairs(values) do set[v] = true end
  wanted[name] = set
end
local ids = {}
for _, v in ipairs(spec.memory_ids) do ids[v] = true end
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local removed = 0
for _, entry in ipairs(entries) do
  local fields = entry[2]
  local hit = false
  for i = 1, #fields, 2 do
    local set = wanted[fields[i]]
    if set and set[fields[i + 1]] then hit = true end
    if fields[i] == 'memory_id' and ids[fields[i + 1]] then hit = true end
    if fields[i] == 'data' and next(ids) ~= nil then
      local mid = string.match(fields[i + 1], '"memory_id": "([^"]*)"')
      if mid and ids[mid] then hit = true end
    end
  end
  if hit then
    -- pcall: a stream without that group has nothing to acknowledge
    if ARGV[3] ~= '' then redis.pcall('XACK', KEYS[1], ARGV[3], entry[1]) end
    redis.call('XDEL', KEYS[1], entry[1])
    removed = removed + 1
  end
end
if #entries < tonumber(ARGV[2]) then return {'', removed} end
local last = entries[#entries][1]
local dash = string.find(last, '-', 1, true)
return {string.sub(last, 1, dash) .. tostring(tonumber(string.sub(last, dash + 1)) + 1), removed}
"""

CHUNK = 500


def scrub(
    stream: str,
    *,
    fields: Mapping[str, Collection[str]] | None = None,
    memory_ids: Collection[str] = (),
    group: str = "",
) -> int:
    """Remove (and, with `group`, acknowledge) every entry about these values; returns how many."""
    spec = {
        "fields": {name: sorted(values) for name, values in (fields or {}).items() if values},
        "memory_ids": sorted(memory_ids),
    }
    if not spec["fields"] and not spec["memory_ids"]:
        return 0
    payload = json.dumps(spec)
    client = get_redis()
    start, removed = "-", 0
    while True:
        next_start, count = client.eval(_SCRUB, 1, stream, start, CHUNK, group, payload)
        removed += int(count)
        if not next_start:
            return removed
        start = next_start.decode() if isinstance(next_start, bytes) else str(next_start)
