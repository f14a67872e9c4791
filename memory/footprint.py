"""Where one user's data lives, key family by key family (reads only): what an erase removes.

The per-user index keys (`user:<u>:mids`, `user:<u>:sessions`) are not enough: the session set
is pruned as sessions expire while their extraction state (pending turns, plans) lives on, and
streams and idempotency keys are not indexed by user at all. So the keyspace is scanned for the
session and extraction families, and each key is attributed by what it says about its owner.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from core.redis_client import get_redis
from memory import keys
from memory.records import as_text

SCAN_COUNT = 1000
STREAM_BATCH = 1000


@dataclass
class Footprint:
    user_id: str
    memory_ids: list[str]  # every id the user ever had (user:<u>:mids)
    live: list[str]
    trashed: list[str]
    histories: list[str]  # a history list, or a never-changed live memory (its hash holds "added")
    access_stats: list[str]
    session_ids: list[str]  # every session whose data goes, live or already pruned
    live_sessions: list[str]
    session_keys: list[str]  # wm:<s>[:part] keys that exist
    traces: int
    extraction_keys: list[str]  # extract:<s>:<part> keys that exist, plans and locks excepted
    plans: list[str]
    pending_turns: int
    idempotency_keys: list[str]
    user_keys: list[str]
    lock_keys: list[str] = field(default_factory=list)


def _scan(client: redis.Redis, family: str) -> Iterator[str]:
    for raw in client.scan_iter(match=keys.family_pattern(family), count=SCAN_COUNT):
        yield as_text(raw)


def _stream_sessions(client: redis.Redis, stream: str, user_id: str) -> set[str]:
    """Session ids of the entries of `stream` whose user_id is this user."""
    found: set[str] = set()
    target = user_id.encode()
    start = "-"
    while True:
        entries = client.xrange(stream, min=start, max="+", count=STREAM_BATCH)
        for _entry_id, fields in entries:
            if fields.get(b"user_id") == target and b"session_id" in fields:
                found.add(fields[b"session_id"].decode())
        if len(entries) < STREAM_BATCH:
            return found
        ms, seq = entries[-1][0].decode().split("-")
        start = f"{ms}-{int(seq) + 1}"


def _said_by(raw: bytes | None, user_id: str, *path: str) -> bool:
    """Does this JSON (a queued turn, a plan) name the user at `path`?"""
    if not raw:
        return False
    try:
        value = json.loads(raw)
        for step in path:
            value = value[step]
    except (ValueError, KeyError, TypeError):
        return False
    return value == user_id


def _sessions_by_content(
    client: redis.Redis, extraction: dict[str, list[tuple[str, str]]], user_id: str
) -> set[str]:
    """Sessions whose pending turns or saved plan belong to the user (their wm hash may be gone)."""

    def names_user(redis_key: str, part: str) -> bool:
        if part == "turns":
            return any(_said_by(v, user_id, "user_id") for v in client.hvals(redis_key))
        return part.startswith("plan:") and _said_by(client.get(redis_key), user_id, "scope", "user_id")

    return {s for s, parts in extraction.items() if any(names_user(k, part) for k, part in parts)}


def user_footprint(*, user_id: str) -> Footprint:
    client = get_redis()
    listed = sorted(as_text(m) for m in client.smembers(keys.user_memory_ids(user_id)))
    with client.pipeline(transaction=False) as pipe:
        for memory_id in listed:
            pipe.hget(keys.memory(memory_id), "user_id")
            pipe.hget(keys.trash(memory_id), "user_id")
        hash_users = pipe.execute()
    # An id the user's index still lists whose memory now belongs to someone else is not theirs:
    # nothing of it is the user's to remove (ids are given once, so this is only a safeguard).
    target = user_id.encode()
    own = [all(u in (None, target) for u in hash_users[i : i + 2]) for i in range(0, len(hash_users), 2)]
    ever = [m for m, mine in zip(listed, own, strict=True) if mine]
    with client.pipeline(transaction=False) as pipe:
        for memory_id in ever:
            pipe.exists(keys.memory(memory_id))
            pipe.exists(keys.trash(memory_id))
            pipe.exists(keys.history(memory_id))
            pipe.exists(keys.memory_stats(memory_id))
        flags = pipe.execute()
    live = [m for i, m in enumerate(ever) if flags[4 * i]]
    trashed = [m for i, m in enumerate(ever) if flags[4 * i + 1]]
    # A live memory that never changed keeps its history ("added") in its own hash, not in a list
    # (memory.events.added_entry): it is a history all the same, and goes with the hash.
    histories = [m for i, m in enumerate(ever) if flags[4 * i + 2] or flags[4 * i]]
    stats = [m for i, m in enumerate(ever) if flags[4 * i + 3]]

    working_keys: dict[str, list[str]] = defaultdict(list)
    for redis_key in _scan(client, "wm"):
        if parsed := keys.split_family_key(redis_key, "wm"):
            working_keys[parsed[0]].append(redis_key)
    extraction: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for redis_key in _scan(client, "extract"):
        parsed = keys.split_family_key(redis_key, "extract")
        if parsed and parsed[1]:  # `extract:stats` is global, not a session's
            extraction[parsed[0]].append((redis_key, parsed[1]))

    owners: dict[str, str] = {}
    with_hash = [s for s in working_keys if keys.session(s) in working_keys[s]]
    with client.pipeline(transaction=False) as pipe:
        for session_id in with_hash:
            pipe.hget(keys.session(session_id), "user_id")
        for session_id, owner in zip(with_hash, pipe.execute(), strict=True):
            owners[session_id] = as_text(owner) if owner is not None else ""
    candidates = {as_text(s) for s in client.zrange(keys.user_sessions(user_id), 0, -1)}
    candidates |= _stream_sessions(client, keys.turn_stream(), user_id)
    candidates |= _stream_sessions(client, keys.dead_letter_stream(), user_id)
    candidates |= {s for s, owner in owners.items() if owner == user_id}
    candidates |= _sessions_by_content(client, extraction, user_id)
    # A session now owned by someone else (moved at login) is theirs: an erase of the old id
    # must not take the account's chat with it.
    sessions = sorted(s for s in candidates if owners.get(s, user_id) == user_id)

    session_keys = sorted(k for s in sessions for k in working_keys.get(s, []))
    theirs = [(k, part) for s in sessions for k, part in extraction.get(s, [])]
    plans = sorted(k for k, part in theirs if part.startswith("plan:"))
    # Locks are released by the eraser that holds them, not deleted under a running job.
    extraction_keys = sorted(k for k, part in theirs if part != "lock" and not part.startswith("plan:"))
    with client.pipeline(transaction=False) as pipe:
        for session_id in sessions:
            pipe.hlen(keys.session_traces(session_id))
            pipe.hlen(keys.extraction(session_id, "turns"))
        lengths = pipe.execute()
    idempotency = _idempotency_keys(client, set(ever))
    user_keys = [
        k
        for k in (keys.user_memory_ids(user_id), keys.user_trash(user_id), keys.user_sessions(user_id))
        if client.exists(k)
    ]
    return Footprint(
        user_id=user_id,
        memory_ids=ever,
        live=live,
        trashed=trashed,
        histories=histories,
        access_stats=stats,
        session_ids=sessions,
        live_sessions=[s for s in sessions if s in owners],
        session_keys=session_keys,
        traces=sum(lengths[0::2]),
        extraction_keys=extraction_keys,
        plans=plans,
        pending_turns=sum(lengths[1::2]),
        idempotency_keys=idempotency,
        user_keys=user_keys,
        lock_keys=[keys.extraction_lock(s) for s in sessions],
    )


def _idempotency_keys(client: redis.Redis, memory_ids: set[str]) -> list[str]:
    """Idempotency markers that point at one of these memories (they name its session and turn)."""
    if not memory_ids:
        return []
    found: list[str] = []
    batch: list[str] = []

    def check() -> None:
        for redis_key, value in zip(batch, client.mget(batch), strict=True):
            if value is not None and as_text(value) in memory_ids:
                found.append(redis_key)
        batch.clear()

    for redis_key in (
        as_text(k) for k in client.scan_iter(match=keys.memory_family_pattern("idem"), count=SCAN_COUNT)
    ):
        batch.append(redis_key)
        if len(batch) >= SCAN_COUNT:
            check()
    if batch:
        check()
    return sorted(found)
