"""Writes to memory. Every change goes through here: validated, atomic with its history entry,
published to the live feed only after Redis accepted it (the shared steps: memory/mutation.py;
a user's memory as a whole: memory/lifecycle.py)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from dataclasses import fields as dataclass_fields
from typing import Any

import numpy as np
import redis
from django.conf import settings
from redis.client import Pipeline
from ulid import ULID

from core.redis_client import get_redis
from memory import events, keys
from memory.access import Owner
from memory.entities import entities_after_edit
from memory.index import ensure_index
from memory.lease import hold as hold_lease
from memory.mutation import (
    DEFAULT_TTL,
    IDEMPOTENCY_TTL_SECONDS,
    MAX_ATTEMPTS,
    TTL,
    UNCHANGED,
    Default,
    Mutation,
    Unchanged,
    change_ttl,
    check_actor_may_change,
    clear_event_date,
    editable,
    embed,
    memory_type_of,
    mutate,
    ttl_value,
    validate_new_id,
    validate_scope,
    validate_seconds,
    validate_text,
)
from memory.policy import Change
from memory.query import normalise_tags, validate_id
from memory.records import content_hash, from_hash, to_hash
from memory.selectors import get_memory, memory_history
from memory.types import (
    Actor,
    HistoryEvent,
    InvalidInput,
    Lease,
    Memory,
    MemoryNotFound,
    MemoryType,
    RequestReplayMismatch,
    Scope,
    VersionConflict,
)


@dataclass
class NewMemory:
    """Input for `add_memories` (bulk)."""

    text: str
    scope: Scope
    type: MemoryType | str = MemoryType.SEMANTIC
    topics: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    event_date: float | None = None
    source: list[str] = field(default_factory=list)
    created_at: float | None = None
    ttl_seconds: TTL = DEFAULT_TTL
    pinned: bool = False
    embedding: np.ndarray | None = None
    # Set by callers that may retry (extraction workers): the same key is applied once only.
    idempotency_key: str = ""
    # A caller-chosen id (an outside client names its memories itself); "" = a new ULID. Taken ids
    # (live or in the trash) are refused.
    id: str = ""


@dataclass(frozen=True)
class IdempotentRequest:
    """A whole batch applied once (the REST API's `Idempotency-Key`): `key` names the request
    (scoped by the caller), `fingerprint` its content. The same key again with the same content
    returns the memories the first call added; with other content it is refused (RequestReplayMismatch),
    so a key can never stand for two different batches."""

    key: str
    fingerprint: str

    @classmethod
    def of(cls, *, key: str, items: Sequence[NewMemory], reason: str = "") -> IdempotentRequest:
        """The request `key` names, fingerprinted by everything its items would store."""

        def stored(item: NewMemory) -> dict[str, Any]:
            data = {f.name: getattr(item, f.name) for f in dataclass_fields(item)}
            for name in _NOT_CONTENT:
                data.pop(name)
            data["scope"] = asdict(item.scope)
            data["type"] = str(item.type)
            data["ttl_seconds"] = "default" if isinstance(item.ttl_seconds, Default) else item.ttl_seconds
            return data

        content = json.dumps({"reason": reason, "items": [stored(i) for i in items]}, sort_keys=True)
        return cls(key=key, fingerprint=hashlib.sha256(content.encode()).hexdigest())

    def item_key(self, index: int) -> str:
        return f"{self.key}:{index}"


# A precomputed vector follows from the text; the item keys are the request's own.
_NOT_CONTENT = frozenset({"embedding", "idempotency_key"})


# Access stats of a memory nobody reads any more expire on their own (the memory itself may not).
ACCESS_STATS_TTL_SECONDS = 400 * 24 * 3600


def _prepare(item: NewMemory, *, actor: Actor, now: float) -> tuple[Memory, int | None]:
    memory_type = memory_type_of(item.type)
    text = validate_text(item.text)
    created = float(item.created_at) if item.created_at is not None else now
    memory = Memory(
        id=validate_new_id(item.id) if item.id else str(ULID()),
        text=text,
        type=memory_type,
        scope=validate_scope(item.scope),
        topics=normalise_tags(item.topics, name="topics"),
        entities=normalise_tags(item.entities, name="entities"),
        event_date=item.event_date,
        created_at=created,
        updated_at=created,
        last_accessed_at=0.0,
        content_hash=content_hash(text),
        version=1,
        pinned=item.pinned,
        source=[str(s) for s in item.source],
        created_by=actor,
    )
    return memory, ttl_value(item.ttl_seconds, memory_type, event_date=item.event_date, now=now)


def _queue_new(
    pipe: Pipeline, memory: Memory, vector: np.ndarray, ttl: int | None, event: HistoryEvent
) -> None:
    expires_at = time.time() + ttl if ttl else None
    key = keys.memory(memory.id)
    pipe.hset(key, mapping=to_hash(memory, embedding=vector, expires_at=expires_at))
    if ttl:
        pipe.expire(key, ttl)
    pipe.sadd(keys.user_memory_ids(memory.scope.user_id), memory.id)
    pipe.zadd(keys.users(), {memory.scope.user_id: memory.updated_at})
    events.record(pipe, event)


def _refuse_taken_ids(pipe: Pipeline, memory_ids: list[str]) -> None:
    """Inside the WATCH: a chosen id already used (live or in the trash) would overwrite a memory."""
    taken = [m for m in memory_ids if pipe.exists(keys.memory(m), keys.trash(m))]
    if taken:
        raise InvalidInput(f"memory id {taken[0]} is already in use; choose another id")


def add_memories(
    *,
    items: Sequence[NewMemory],
    actor: Actor,
    reason: str = "",
    publish: bool = False,
    lease: Lease | None = None,
    request: IdempotentRequest | None = None,
) -> list[Memory]:
    """Add many memories in one pipelined transaction; embeds those without a precomputed vector.

    Items whose idempotency key was already applied are not added again; their earlier memory is
    returned in their place. With a `request`, each item's key is the request's and the batch is
    refused when the key was used for other content. With a `lease`, nothing is added unless its
    lock is still held (`LeaseLost`).
    """
    if request is not None:
        items = [replace(item, idempotency_key=request.item_key(i)) for i, item in enumerate(items)]
    ensure_index()
    now = time.time()
    prepared = [_prepare(item, actor=actor, now=now) for item in items]
    missing = [i for i, item in enumerate(items) if item.embedding is None]
    vectors: list[np.ndarray | None] = [item.embedding for item in items]
    if missing:
        for i, vector in zip(missing, embed([prepared[i][0].text for i in missing]), strict=True):
            vectors[i] = vector
    idem_keys = [keys.idempotency(item.idempotency_key) for item in items if item.idempotency_key]
    chosen = [i for i, item in enumerate(items) if item.id]
    if len({prepared[i][0].id for i in chosen}) < len(chosen):
        raise InvalidInput("two new memories have the same id")
    chosen_keys = [k for i in chosen for k in (keys.memory(items[i].id), keys.trash(items[i].id))]
    request_key = keys.idempotency(request.key) if request is not None else ""
    client = get_redis()
    for _ in range(MAX_ATTEMPTS):
        added_events = []
        done: dict[int, str] = {}
        with client.pipeline(transaction=True) as pipe:
            try:
                hold_lease(pipe, lease)
                if request is not None:
                    pipe.watch(request_key)
                    seen = pipe.get(request_key)
                    if seen is not None and seen.decode() != request.fingerprint:
                        raise RequestReplayMismatch(
                            "this Idempotency-Key was already used for a different request"
                        )
                if idem_keys:
                    pipe.watch(*idem_keys)
                    applied = dict(zip(idem_keys, pipe.mget(idem_keys), strict=True))
                    done = {
                        i: applied[keys.idempotency(item.idempotency_key)].decode()
                        for i, item in enumerate(items)
                        if item.idempotency_key and applied[keys.idempotency(item.idempotency_key)]
                    }
                if chosen_keys:
                    pipe.watch(*chosen_keys)
                    _refuse_taken_ids(pipe, [prepared[i][0].id for i in chosen if i not in done])
                pipe.multi()
                for i, ((memory, ttl), vector) in enumerate(zip(prepared, vectors, strict=True)):
                    if i in done:
                        continue
                    assert vector is not None
                    event = events.memory_added(memory, actor, reason)
                    added_events.append(event)
                    _queue_new(pipe, memory, vector, ttl, event)
                    if items[i].idempotency_key:
                        pipe.set(
                            keys.idempotency(items[i].idempotency_key), memory.id, ex=IDEMPOTENCY_TTL_SECONDS
                        )
                if request is not None:
                    pipe.set(request_key, request.fingerprint, ex=IDEMPOTENCY_TTL_SECONDS)
                pipe.execute()
            except redis.WatchError:
                continue
        break
    else:
        raise VersionConflict("could not add the memories: too much contention; try again")
    if publish:
        events.publish(added_events)
    memories = []
    for i, (memory, ttl) in enumerate(prepared):
        if i in done:
            # Read as the item's user: a key once used for another user's memory must not hand
            # that memory out (it is "not found", as for any by-id call outside the owner).
            owner = Owner.user(items[i].scope.user_id)
            memories.append(get_memory(memory_id=done[i], owner=owner, include_deleted=True))
            continue
        memory.ttl_seconds = ttl
        memories.append(memory)
    return memories


def add_memory(
    *,
    text: str,
    scope: Scope,
    actor: Actor,
    type: MemoryType | str = MemoryType.SEMANTIC,
    topics: Sequence[str] = (),
    entities: Sequence[str] = (),
    event_date: float | None = None,
    source: Sequence[str] = (),
    ttl_seconds: TTL = DEFAULT_TTL,
    pinned: bool = False,
    reason: str = "",
    embedding: np.ndarray | None = None,
    idempotency_key: str = "",
    lease: Lease | None = None,
) -> Memory:
    item = NewMemory(
        text=text,
        scope=scope,
        type=type,
        topics=list(topics),
        entities=list(entities),
        event_date=event_date,
        source=list(source),
        ttl_seconds=ttl_seconds,
        pinned=pinned,
        embedding=embedding,
        idempotency_key=idempotency_key,
    )
    return add_memories(items=[item], actor=actor, reason=reason, publish=True, lease=lease)[0]


def update_memory(
    *,
    memory_id: str,
    owner: Owner,
    actor: Actor,
    text: str | None = None,
    type: MemoryType | str | None = None,
    topics: Sequence[str] | None = None,
    entities: Sequence[str] | None = None,
    entity_hints: Sequence[str] = (),
    event_date: float | Unchanged | None = UNCHANGED,
    reason: str = "",
    expected_version: int | None = None,
    idempotency_key: str = "",
    lease: Lease | None = None,
) -> Memory:
    """Change text / type / topics / entities / event date: version + 1, re-embedded when the text changes.

    A new text without explicit `entities` gets its entities again (`memory.entities`): the old
    ones it still names, `entity_hints` (what the extractor found with the new text) it names, and
    its proper nouns; "User lives in Porto" no longer carries `lisbon`."""
    new_text = validate_text(text) if text is not None else None
    new_type = memory_type_of(type) if type is not None else None
    new_topics = normalise_tags(list(topics), name="topics") if topics is not None else None
    new_entities = normalise_tags(list(entities), name="entities") if entities is not None else None
    hints = normalise_tags(list(entity_hints), name="entities")
    # Embed outside the WATCH window; the new text does not depend on the old state.
    vector = embed([new_text])[0] if new_text is not None else None

    def build(before: Memory, pipe: Pipeline) -> Mutation:
        check_actor_may_change(before, actor, Change.UPDATE)
        after = replace(
            before,
            text=new_text if new_text is not None else before.text,
            type=new_type or before.type,
            topics=new_topics if new_topics is not None else before.topics,
            entities=entities_after_edit(before, text=new_text, entities=new_entities, hints=hints),
            event_date=before.event_date if isinstance(event_date, Unchanged) else event_date,
            version=before.version + 1,
            updated_at=time.time(),
        )
        after.content_hash = content_hash(after.text)
        fields = to_hash(after, embedding=vector, expires_at=None)
        event = events.memory_updated(before, after, actor, reason)
        return Mutation(after=after, event=event, fields=editable(fields), also=clear_event_date(after))

    return mutate(
        memory_id,
        build,
        owner=owner,
        expected_version=expected_version,
        idempotency_key=idempotency_key,
        lease=lease,
    )


def restore_version(
    *, memory_id: str, owner: Owner, version: int, actor: Actor, expected_version: int | None = None
) -> Memory:
    """Bring back the text/type/topics of an earlier version, as a new version."""
    get_memory(memory_id=memory_id, owner=owner, include_deleted=False)  # before its history is read
    target = next(
        (e.new for e in memory_history(memory_id=memory_id) if e.version == version and e.new), None
    )
    if target is None:
        raise InvalidInput(f"memory {memory_id} has no version {version} to restore")
    vector = embed([target["text"]])[0]

    def build(before: Memory, pipe: Pipeline) -> Mutation:
        check_actor_may_change(before, actor, Change.UPDATE)
        after = replace(
            before,
            text=target["text"],
            type=MemoryType(target["type"]),
            topics=list(target["topics"]),
            entities=list(target["entities"]),
            event_date=target.get("event_date"),
            version=before.version + 1,
            updated_at=time.time(),
        )
        after.content_hash = content_hash(after.text)
        event = events.memory_version_restored(before, after, actor, from_version=version)
        fields = editable(to_hash(after, embedding=vector, expires_at=None))
        return Mutation(after=after, event=event, fields=fields, also=clear_event_date(after))

    return mutate(memory_id, build, owner=owner, expected_version=expected_version)


def set_pinned(*, memory_id: str, owner: Owner, pinned: bool, actor: Actor, reason: str = "") -> Memory:
    return _set_flag(memory_id, owner, flag="pinned", value=pinned, actor=actor, reason=reason)


def set_locked(*, memory_id: str, owner: Owner, locked: bool, actor: Actor, reason: str = "") -> Memory:
    return _set_flag(memory_id, owner, flag="locked", value=locked, actor=actor, reason=reason)


_FLAG_CHANGES = {
    ("pinned", True): Change.PIN,
    ("pinned", False): Change.UNPIN,
    ("locked", True): Change.LOCK,
    ("locked", False): Change.UNLOCK,
}


def _set_flag(memory_id: str, owner: Owner, *, flag: str, value: bool, actor: Actor, reason: str) -> Memory:
    def build(before: Memory, pipe: Pipeline) -> Mutation:
        check_actor_may_change(before, actor, _FLAG_CHANGES[(flag, value)])
        after = replace(before, version=before.version + 1, updated_at=time.time())
        setattr(after, flag, value)
        event = events.memory_flag_changed(after, actor, flag=flag, value=value, reason=reason)
        return Mutation(
            after=after,
            event=event,
            fields={flag: "1" if value else "0", "version": after.version, "updated_at": after.updated_at},
        )

    return mutate(memory_id, build, owner=owner)


def set_ttl(
    *, memory_id: str, owner: Owner, ttl_seconds: int | None, actor: Actor, reason: str = ""
) -> Memory:
    """Set a TTL in seconds from now, or None to keep the memory forever."""
    ttl = None if ttl_seconds is None else validate_seconds(ttl_seconds, name="ttl_seconds")
    return change_ttl(memory_id, owner=owner, actor=actor, reason=reason, new_ttl=lambda before: ttl)


def extend_ttl(*, memory_id: str, owner: Owner, seconds: int, actor: Actor, reason: str = "") -> Memory:
    """Add time to a memory that expires (a memory without TTL has nothing to extend)."""
    extra = validate_seconds(seconds, name="seconds")

    def extended(before: Memory) -> int:
        if before.ttl_seconds is None:
            raise InvalidInput("this memory does not expire; set a TTL instead of extending it")
        return before.ttl_seconds + extra

    return change_ttl(memory_id, owner=owner, actor=actor, reason=reason, new_ttl=extended)


def record_refused_change(
    *,
    memory_id: str,
    owner: Owner,
    actor: Actor,
    action: str,
    proposed_text: str = "",
    reason: str,
    idempotency_key: str = "",
) -> Memory:
    """Note in the memory's history that `actor` was refused `action` ("update", "delete"); the
    memory itself is unchanged (same version)."""

    def build(before: Memory, pipe: Pipeline) -> Mutation:
        event = events.change_refused(
            before, actor, action=action, proposed_text=proposed_text, reason=reason
        )
        return Mutation(after=before, event=event)

    return mutate(memory_id, build, owner=owner, idempotency_key=idempotency_key)


# --- Delete and restore -------------------------------------------------------------------------


def delete_memory(
    *,
    memory_id: str,
    owner: Owner,
    actor: Actor,
    reason: str = "",
    idempotency_key: str = "",
    lease: Lease | None = None,
) -> Memory:
    """Soft delete: the memory leaves the index at once and can be restored for the grace period."""
    grace = settings.SOFT_DELETE_GRACE_SECONDS

    def build(before: Memory, pipe: Pipeline) -> Mutation:
        check_actor_may_change(before, actor, Change.DELETE)
        after = replace(before, deleted=True, version=before.version + 1)
        now = time.time()

        def also(p: Pipeline) -> None:
            trash_key = keys.trash(memory_id)
            p.hset(
                keys.memory(memory_id),
                mapping={"deleted_at": now, "ttl_before_delete": before.ttl_seconds or 0},
            )
            p.rename(keys.memory(memory_id), trash_key)
            if grace > 0:
                p.expire(trash_key, grace)
            else:
                p.delete(trash_key)
            p.zadd(keys.user_trash(before.scope.user_id), {memory_id: now})

        event = events.memory_deleted(after, actor, reason, grace_seconds=grace)
        return Mutation(after=after, event=event, fields={"version": after.version}, also=also)

    return mutate(memory_id, build, owner=owner, idempotency_key=idempotency_key, lease=lease)


def restore_memory(*, memory_id: str, owner: Owner, actor: Actor, reason: str = "") -> Memory:
    """Undo a soft delete within the grace period."""
    validate_id(memory_id, name="memory_id")
    client = get_redis()
    trash_key, live_key = keys.trash(memory_id), keys.memory(memory_id)
    for _ in range(MAX_ATTEMPTS):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(trash_key, live_key)
                raw = pipe.hgetall(trash_key)
                before = from_hash(raw, deleted=True) if raw else None
                if before is None or not owner.admits(before):
                    raise MemoryNotFound(f"memory {memory_id} is not in the trash (never deleted, or purged)")
                # Written with the delete, in its MULTI: the watched trash key guards it too.
                deletion = events.last_deletion(memory_history(memory_id=memory_id))
                deleted_by = deletion.actor if deletion else None
                check_actor_may_change(before, actor, Change.RESTORE, deleted_by=deleted_by)
                remaining = int(float(raw.get(b"ttl_before_delete", b"0") or 0))
                after = replace(before, deleted=False, version=before.version + 1, updated_at=time.time())
                after.ttl_seconds = remaining or None
                event = events.memory_restored(after, actor, reason)
                pipe.multi()
                pipe.hdel(trash_key, "deleted_at", "ttl_before_delete")
                pipe.hset(trash_key, mapping={"version": after.version, "updated_at": after.updated_at})
                pipe.rename(trash_key, live_key)
                if remaining:
                    pipe.expire(live_key, remaining)
                    pipe.hset(live_key, "expires_at", time.time() + remaining)
                else:
                    pipe.persist(live_key)
                pipe.zrem(keys.user_trash(before.scope.user_id), memory_id)
                events.record(pipe, event)
                pipe.execute()
            except redis.WatchError:
                continue
        events.publish([event])
        return after
    raise VersionConflict(f"memory {memory_id} is changing too fast; try again")


# --- Access stats -------------------------------------------------------------------------------


def record_access(*, memory_ids: Sequence[str], now: float | None = None) -> None:
    """Bump access count and time of memories used in a prompt (no history: reads are not changes).

    The stats live in their own small hash: writing to the indexed memory hash would make
    RediSearch re-index the whole document on every turn.
    """
    if not memory_ids:
        return
    now = now or time.time()
    with get_redis().pipeline(transaction=False) as pipe:
        for memory_id in memory_ids:
            stats = keys.memory_stats(memory_id)
            pipe.hincrby(stats, "access_count", 1)
            pipe.hset(stats, "last_accessed_at", now)
            pipe.expire(stats, ACCESS_STATS_TTL_SECONDS)
        pipe.execute()
