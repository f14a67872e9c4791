"""Every Redis key the memory engine uses, in one place.

Cluster layout: keys that one transaction or script writes together share a hash tag, so they
sit in one slot of a Redis Cluster. A session's working memory and extraction state are tagged
with the session id (`wm:{<s>}:msgs`, `extract:{<s>}:lock`), a user's index keys with the user id
(`user:{<u>}:sessions`). Keys written beside them for other owners (the user's session list, the
turn stream) are written outside those transactions, in an order that leaves nothing lost when a
step fails (memory/working.py, memory/extraction/queue.py). Installs from before the tags move
their keys once with `memory.key_layout.migrate` (run by `manage.py migrate_keys` and at start).

The long-term memory tier is one slot: every key a memory write, erase, identity move or the
retention sweep touches together starts `<prefix>:{m}:` (core.redis_client.MEMORY_TAG), so all of
its transactions stay valid on a cluster and the index (whose module searches only its own shard)
covers every memory. Writes that also touch session or user keys do those outside the memory MULTI.
"""

from __future__ import annotations

import zlib

from django.conf import settings

from core.redis_client import MEMORY_TAG, key


def safe(part: str) -> str:
    """An id as one key segment: ':' is the separator, so `a:msgs` must not become a sub-key of `a`."""
    return part.replace("%", "%25").replace(":", "%3A")


def unsafe(segment: str) -> str:
    """The id a `safe` segment came from (every '%' in a segment starts "%25" or "%3A")."""
    return segment.replace("%3A", ":").replace("%25", "%")


def tagged(part: str) -> str:
    """An id as a hash-tag segment `{<id>}`: braces inside the id are escaped too, so the tag
    always ends where the id does (Redis hashes only what is between the first `{` and `}`)."""
    return "{" + safe(part).replace("{", "%7B").replace("}", "%7D") + "}"


def untagged(segment: str) -> str:
    """The id a `tagged` segment (or a plain `safe` one, from before the tags) came from."""
    if len(segment) >= 2 and segment[0] == "{" and segment[-1] == "}":
        segment = segment[1:-1].replace("%7B", "{").replace("%7D", "}")
    return unsafe(segment)


def _glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def family_pattern(family: str) -> str:
    """SCAN pattern for every key of a family ("wm", "extract", "idem"): `<prefix>:<family>:*`."""
    return _glob(key(family)) + ":*"


def split_family_key(redis_key: str, family: str) -> tuple[str, str] | None:
    """`<prefix>:<family>:<safe id>[:<part>]` -> (id, part); None for another family's key."""
    head = key(family) + ":"
    if not redis_key.startswith(head):
        return None
    segment, _, part = redis_key[len(head) :].partition(":")
    return untagged(segment), part


def memory_key(*parts: str) -> str:
    """A key of the long-term memory tier: `<prefix>:{m}:<parts>` (one slot on a cluster)."""
    return key(MEMORY_TAG, *parts)


def memory_prefix() -> str:
    """Key prefix of live memory hashes (the index covers exactly these)."""
    return memory_key("mem") + ":"


def memory_family_pattern(family: str) -> str:
    """SCAN pattern for every key of a memory-tier family ("idem", "hist"): `<prefix>:{m}:<family>:*`."""
    return _glob(memory_key(family)) + ":*"


def memory(memory_id: str) -> str:
    """A live memory hash (indexed)."""
    return memory_key("mem", safe(memory_id))


def memory_stats(memory_id: str) -> str:
    """Access count and last access of a memory, outside the indexed hash (no re-index per read)."""
    return memory_key("memstats", safe(memory_id))


def trash(memory_id: str) -> str:
    """A soft-deleted memory: renamed out of the index prefix, expires after the grace period."""
    return memory_key("trash", safe(memory_id))


def memory_id_claim(memory_id: str) -> str:
    """A caller-chosen id, claimed for good by the create that used it (no TTL): an id is given to
    one memory only, so a later memory can never inherit its history, stats or user index entry."""
    return memory_key("idclaim", safe(memory_id))


def history(memory_id: str) -> str:
    return memory_key("hist", safe(memory_id))


def user_memory_ids(user_id: str) -> str:
    """Every memory id a user ever had (for history, erase and identity moves): in the memory slot,
    since every memory write adds to it in its MULTI."""
    return memory_key("user", safe(user_id), "mids")


def user_trash(user_id: str) -> str:
    """Soft-deleted memory ids of a user, scored by deletion time (memory slot, like the ids)."""
    return memory_key("user", safe(user_id), "trash")


def user_sessions(user_id: str) -> str:
    """Session ids of a user, scored by last activity."""
    return key("user", tagged(user_id), "sessions")


# The users index is split over this many sorted sets (a user's is crc32(id) % n), so every
# write of every user does not land on one key (one cluster node). Fixed: readers merge them all.
USER_SHARDS = 16


def legacy_users() -> str:
    """The single users sorted set from before the shards (moved by memory.key_layout)."""
    return key("users")


def users(user_id: str) -> str:
    """The shard of the users index (user id -> last activity; inspector overview) `user_id` is in."""
    return key("users", str(zlib.crc32(user_id.encode()) % USER_SHARDS))


def user_shards() -> list[str]:
    return [key("users", str(n)) for n in range(USER_SHARDS)]


def session(session_id: str) -> str:
    return key("wm", tagged(session_id))


def session_messages(session_id: str) -> str:
    return key("wm", tagged(session_id), "msgs")


def session_data(session_id: str) -> str:
    return key("wm", tagged(session_id), "data")


def session_tools(session_id: str) -> str:
    return key("wm", tagged(session_id), "tools")


def session_traces(session_id: str) -> str:
    return key("wm", tagged(session_id), "traces")


def session_keys(session_id: str) -> list[str]:
    return [
        session(session_id),
        session_messages(session_id),
        session_data(session_id),
        session_tools(session_id),
        session_traces(session_id),
    ]


def mutation_stream() -> str:
    """Every memory mutation in time order (live feed, audit): in the memory slot, so a write's
    entry is added in the write's own MULTI."""
    return memory_key("stream", "mutations")


# The extraction workers' consumer group on the turn stream.
TURN_GROUP = "extractors"


def turn_stream(shard: int = 0) -> str:
    """Finished chat turns waiting for background extraction: one of TURN_STREAM_SHARDS streams.
    Shard 0 keeps the name of the single stream from before the shards."""
    return key("stream", "turns") if shard == 0 else key("stream", "turns", str(shard))


def turn_streams() -> list[str]:
    return [turn_stream(n) for n in range(settings.TURN_STREAM_SHARDS)]


def turn_stream_of(session_id: str) -> str:
    """The stream a session's turns are announced on (always the same one while the count stays)."""
    return turn_stream(zlib.crc32(session_id.encode()) % settings.TURN_STREAM_SHARDS)


def idempotency(op_key: str) -> str:
    """Marks an operation (e.g. one extraction decision) as applied, so a redelivery skips it
    (memory slot: checked and set in the memory write's MULTI)."""
    return memory_key("idem", safe(op_key))


def dead_letter_stream() -> str:
    """Extraction jobs that failed too often, with their turns, for retry or discard."""
    return key("stream", "turns", "dead")


def extraction(session_id: str, part: str) -> str:
    """Per-session extraction state: seq, cursor, turns, lock, plan:<n>, last_at, retry_at, failures."""
    return key("extract", tagged(session_id), part)


def extraction_lock(session_id: str) -> str:
    """Held by the worker extracting the session (and taken over by an erase or identity move)."""
    return extraction(session_id, "lock")


def extraction_lock_mirror(session_id: str) -> str:
    """The session's extraction lock as seen by the memory tier: holds the same token as the lock
    (set after it, checked against it), so a memory write fences itself in its own slot."""
    return memory_key("lock", safe(session_id))


def lock_mirror(lock_key: str) -> str:
    """The mirror of an extraction lock key (`extraction_lock`)."""
    parsed = split_family_key(lock_key, "extract")
    assert parsed is not None and parsed[1] == "lock", lock_key
    return extraction_lock_mirror(parsed[0])


def extraction_keys(session_id: str) -> list[str]:
    return [
        extraction(session_id, part)
        for part in ("seq", "cursor", "turns", "lock", "last_at", "retry_at", "failures", "summary_id")
    ]


def extraction_stats() -> str:
    return key("extract", "stats")


def worker_lives() -> str:
    """Worker name -> the id of its current life (process): a lock left by an earlier life is free."""
    return key("workers", "lives")


def layout_marker() -> str:
    """Which key layout the install's keys are in (memory.key_layout)."""
    return key("layout")


def retention_last_run() -> str:
    """When the retention sweep last ran (epoch seconds), so one worker runs it per interval."""
    return key("retention", "last_run")
