"""A user's memory as a whole: moving it to another identity (an anonymous visitor signs up) and
erasing it (with a receipt of what was removed)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis
from django.conf import settings
from ulid import ULID

from core.redis_client import get_redis
from memory import events, keys, streams, working
from memory.footprint import user_footprint
from memory.lease import release, take_over
from memory.mutation import MAX_ATTEMPTS
from memory.query import validate_id, validate_scope_id
from memory.records import as_text, from_hash
from memory.types import Actor, HistoryEvent, VersionConflict


def _extraction_locks(session_ids: Sequence[str]) -> list[str]:
    return [keys.extraction_lock(session_id) for session_id in session_ids]


def move_identity(*, from_user_id: str, to_user_id: str, actor: Actor) -> dict[str, int]:
    """Everything of `from_user_id` (e.g. an anonymous visitor) now belongs to `to_user_id`.

    An extraction job of one of the visitor's sessions may be running (it chose the owner of its
    memories when it started): the move takes the sessions' extraction locks over, so the job's
    remaining writes fail and it is redone for the new owner. The memories move in one
    transaction that WATCHes everything it read, so a memory added meanwhile is moved too, not
    left behind. Then, still under the locks, the sessions (each in its own slot on a cluster,
    `working.move_sessions`) and the users index. A move cut off half-way is finished by the next
    call (the login that runs it again): nothing is ever deleted before it is in its new place.
    """
    source = validate_id(from_user_id, name="from_user_id")
    target = validate_scope_id(to_user_id, name="to_user_id")
    if source == target:
        return {"memories": 0, "sessions": 0}
    client = get_redis()
    locks: list[str] = []
    token = ""
    moved: list[HistoryEvent] = []
    count = 0
    try:
        for _ in range(MAX_ATTEMPTS):
            sessions = [as_text(s) for s in client.zrange(keys.user_sessions(source), 0, -1)]
            new_locks = [k for k in _extraction_locks(sessions) if k not in locks]
            if new_locks:
                token = take_over(new_locks, seconds=settings.EXTRACTION_LOCK_SECONDS, token=token)
                locks += new_locks
            # Listed before its memories arrive (the users index is another slot on a cluster).
            client.zadd(keys.users(target), {target: time.time()})
            try:
                moved += _move_memories(client, source=source, target=target, actor=actor)
            except redis.WatchError:
                continue
            count += working.move_sessions(from_user_id=source, to_user_id=target)
            # A session listed (or a memory written) since the locks were taken: once more.
            if not client.exists(keys.user_memory_ids(source)) and not client.exists(
                keys.user_sessions(source)
            ):
                break
        else:
            raise VersionConflict("could not move the memories: too much activity; try again")
        client.zrem(keys.users(source), source)
    finally:
        release(locks, token)
    events.publish(moved)
    return {"memories": len(moved), "sessions": count}


def _move_memories(client: redis.Redis, *, source: str, target: str, actor: Actor) -> list[HistoryEvent]:
    """The user's memories, live and deleted, with their index keys: one MULTI in the memory slot."""
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(keys.user_memory_ids(source), keys.user_trash(source))
        memory_ids = sorted(as_text(m) for m in pipe.smembers(keys.user_memory_ids(source)))
        stored = [k for m in memory_ids for k in (keys.memory(m), keys.trash(m))]
        if stored:
            pipe.watch(*stored)
        found = [(k, pipe.hgetall(k)) for k in stored]
        trash = pipe.zrange(keys.user_trash(source), 0, -1, withscores=True)
        moved: list[HistoryEvent] = []
        pipe.multi()
        for redis_key, raw in found:
            if not raw:
                continue
            memory = from_hash(raw)
            added = events.added_entry(memory, raw)
            memory.scope = replace(memory.scope, user_id=target)
            event = events.memory_moved(memory, actor, from_user=source, to_user=target)
            moved.append(event)
            pipe.hset(redis_key, "user_id", target)
            events.record(pipe, event, added=added)
        if memory_ids:
            pipe.sadd(keys.user_memory_ids(target), *memory_ids)
        pipe.delete(keys.user_memory_ids(source))
        if trash:
            pipe.zadd(keys.user_trash(target), {as_text(m): score for m, score in trash})
        pipe.delete(keys.user_trash(source))
        pipe.execute()
    return moved


# KEYS: one id's memory, trash, history and stats; ARGV: the erased user. Deletes them unless the
# memory (live or in the trash) is someone else's by then: an erase removes only the user's own.
_ERASE_MEMORY = """
for i = 1, 2 do
  local owner = redis.call('HGET', KEYS[i], 'user_id')
  if owner and owner ~= ARGV[1] then return 0 end
end
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
"""


def _erase_memories(client: redis.Redis, *, user_id: str, memory_ids: list[str], markers: list[str]) -> None:
    """The user's memories (live and deleted), their history and stats, their idempotency markers
    and the user's memory index keys: one MULTI in the memory slot."""
    with client.pipeline(transaction=True) as pipe:
        for memory_id in memory_ids:
            memory_keys = (
                keys.memory(memory_id),
                keys.trash(memory_id),
                keys.history(memory_id),
                keys.memory_stats(memory_id),
            )
            # A raw EVAL: redis-py's cluster pipeline has no eval() (all four keys share the slot).
            pipe.execute_command("EVAL", _ERASE_MEMORY, 4, *memory_keys, user_id)
        if markers:
            pipe.delete(*markers)
        pipe.delete(keys.user_memory_ids(user_id), keys.user_trash(user_id))
        pipe.execute()


@dataclass(frozen=True)
class EraseReceipt:
    receipt_id: str
    user_id: str
    erased_at: float
    memory_ids: list[str]
    deleted_memory_ids: list[str]
    session_ids: list[str]
    counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "receipt_id": self.receipt_id,
            "user_id": self.user_id,
            "erased_at": self.erased_at,
            "memory_ids": self.memory_ids,
            "deleted_memory_ids": self.deleted_memory_ids,
            "session_ids": self.session_ids,
            "counts": self.counts,
        }


def erase_user(*, user_id: str, actor: Actor) -> EraseReceipt:
    """Remove everything of a user, key family by key family (memories live and deleted, their
    history and access stats, sessions and traces, pending turns, saved plans, queued turns, dead
    letters, idempotency markers, mutation-stream entries). Returns what was removed.

    Extraction jobs of the user's sessions are stopped first: their locks are taken over, so a job
    in flight cannot add memories after the receipt (its next write fails with LeaseLost).
    """
    user_id = validate_id(user_id, name="user_id")
    client = get_redis()
    locks = user_footprint(user_id=user_id).lock_keys
    token = take_over(locks, seconds=settings.EXTRACTION_LOCK_SECONDS)
    try:
        # Again, under the locks: what a job wrote before it was stopped is found now.
        found = user_footprint(user_id=user_id)
        late = [k for k in found.lock_keys if k not in locks]
        take_over(late, seconds=settings.EXTRACTION_LOCK_SECONDS, token=token)
        locks += late
        _erase_memories(client, user_id=user_id, memory_ids=found.memory_ids, markers=found.idempotency_keys)
        # Then the session tier (a slot per session on a cluster), the user's session list after
        # the sessions it lists and the users index last: an erase cut off anywhere is finished by
        # running it again, which finds what is left through the keys removed last.
        for family in (found.session_keys, found.extraction_keys, found.plans):
            if family:
                client.delete(*family)
        client.delete(keys.user_sessions(user_id))
        client.zrem(keys.users(user_id), user_id)
        mutation_events = streams.scrub(
            keys.mutation_stream(), fields={"user_id": [user_id]}, memory_ids=found.memory_ids
        )
        by_user_or_session = {"user_id": [user_id], "session_id": found.session_ids}
        queued = sum(
            streams.scrub(stream, fields=by_user_or_session, group=keys.TURN_GROUP)
            for stream in keys.turn_streams()
        )
        dead = streams.scrub(keys.dead_letter_stream(), fields=by_user_or_session)
    finally:
        release(locks, token)
    counts = {
        "memories": len(found.live),
        "deleted_memories": len(found.trashed),
        "histories": len(found.histories),
        "access_stats": len(found.access_stats),
        "sessions": len(found.live_sessions),
        "expired_sessions": len(found.session_ids) - len(found.live_sessions),
        "session_keys": len(found.session_keys),
        "traces": found.traces,
        "pending_turns": found.pending_turns,
        "extraction_plans": len(found.plans),
        "extraction_state_keys": len(found.extraction_keys),
        "queued_turns": queued,
        "dead_letters": dead,
        "idempotency_keys": len(found.idempotency_keys),
        "mutation_events": mutation_events,
        "user_index_keys": len(found.user_keys),
    }
    receipt = EraseReceipt(
        receipt_id=str(ULID()),
        user_id=user_id,
        erased_at=time.time(),
        memory_ids=found.live,
        deleted_memory_ids=found.trashed,
        session_ids=found.session_ids,
        counts=counts,
    )
    # The audit keeps that an erase happened (with counts), never what was erased.
    erased = events.user_erased(user_id, actor, receipt_id=receipt.receipt_id, counts=counts)
    with client.pipeline(transaction=True) as pipe:
        events.append_to_stream(pipe, payload=json.dumps(erased), user_id=user_id, event="user_erased")
        pipe.execute()
    events.publish([erased])
    return receipt
