"""Writes to memory. Every change goes through here: validated, atomic with its history entry,
published to the live feed only after Redis accepted it.

Concurrency: each mutation WATCHes the memory's key and retries on conflict, so two writers never
lose an update; `expected_version` lets a caller (an inspector form) refuse to overwrite a change it
has not seen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import redis
from django.conf import settings
from redis.client import Pipeline
from ulid import ULID

from core.embeddings import get_embedder
from core.redis_client import get_redis
from core.text import clean_text
from memory import events, keys, streams
from memory.entities import entities_for_text
from memory.footprint import user_footprint
from memory.index import ensure_index
from memory.lease import hold as hold_lease
from memory.lease import release, take_over
from memory.policy import Change, may_change
from memory.query import normalise_tags, validate_id, validate_scope_id
from memory.records import as_text, content_hash, from_hash, to_hash, ttl_or_none
from memory.types import (
    Actor,
    HistoryEvent,
    InvalidInput,
    Lease,
    Memory,
    MemoryNotFound,
    MemoryType,
    Scope,
    VersionConflict,
)

_MAX_ATTEMPTS = 20


class _Default:
    """Marker for "use the type's default TTL"."""


DEFAULT_TTL = _Default()
TTL = int | None | _Default


def default_ttl(memory_type: MemoryType) -> int | None:
    return {
        MemoryType.SEMANTIC: settings.SEMANTIC_TTL_SECONDS,
        MemoryType.EPISODIC: settings.EPISODIC_TTL_SECONDS,
        MemoryType.PROCEDURAL: settings.PROCEDURAL_TTL_SECONDS,
        MemoryType.MESSAGE: settings.MESSAGE_TTL_SECONDS,
    }[memory_type]


def validate_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInput("text must be a string")
    # Stored text must always encode and render: no lone surrogates, no NUL or other control codes.
    cleaned = clean_text(text).strip()
    if not cleaned:
        raise InvalidInput("text is empty (or only control characters)")
    if len(cleaned) > settings.MEMORY_MAX_TEXT_CHARS:
        raise InvalidInput(
            f"text is {len(cleaned)} characters; a memory holds at most {settings.MEMORY_MAX_TEXT_CHARS}"
        )
    return cleaned


def validate_scope(scope: Scope) -> Scope:
    return Scope(
        user_id=validate_scope_id(scope.user_id, name="user_id"),
        agent_id=validate_scope_id(scope.agent_id, name="agent_id"),
        namespace=validate_scope_id(scope.namespace, name="namespace"),
        session_id=validate_scope_id(scope.session_id, name="session_id", required=False),
    )


def _memory_type(value: object) -> MemoryType:
    try:
        return MemoryType(str(value))
    except ValueError as exc:
        raise InvalidInput(
            f"unknown memory type {value!r}; use {', '.join(t.value for t in MemoryType)}"
        ) from exc


def _ttl_value(
    ttl_seconds: TTL, memory_type: MemoryType, *, event_date: float | None = None, now: float | None = None
) -> int | None:
    ttl = default_ttl(memory_type) if isinstance(ttl_seconds, _Default) else ttl_seconds
    if isinstance(ttl_seconds, _Default) and ttl is not None and event_date is not None:
        # An event still ahead is kept until the default lifetime after it: "my exam is on 18
        # December", said in September, must not be forgotten before the exam.
        ahead = event_date - (time.time() if now is None else now)
        if ahead > 0:
            ttl += int(ahead)
    if ttl is not None and (not isinstance(ttl, int) or ttl <= 0):
        raise InvalidInput("ttl_seconds must be a positive number of seconds or None")
    return ttl


def _embed(texts: Sequence[str]) -> np.ndarray:
    return get_embedder().embed(list(texts))


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


IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600
# Access stats of a memory nobody reads any more expire on their own (the memory itself may not).
ACCESS_STATS_TTL_SECONDS = 400 * 24 * 3600


def _prepare(item: NewMemory, *, actor: Actor, now: float) -> tuple[Memory, int | None]:
    memory_type = _memory_type(item.type)
    text = validate_text(item.text)
    created = float(item.created_at) if item.created_at is not None else now
    memory = Memory(
        id=str(ULID()),
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
    return memory, _ttl_value(item.ttl_seconds, memory_type, event_date=item.event_date, now=now)


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


def add_memories(
    *,
    items: Sequence[NewMemory],
    actor: Actor,
    reason: str = "",
    publish: bool = False,
    lease: Lease | None = None,
) -> list[Memory]:
    """Add many memories in one pipelined transaction; embeds those without a precomputed vector.

    Items whose idempotency key was already applied are not added again; their earlier memory is
    returned in their place. With a `lease`, nothing is added unless its lock is still held
    (`LeaseLost`).
    """
    ensure_index()
    now = time.time()
    prepared = [_prepare(item, actor=actor, now=now) for item in items]
    missing = [i for i, item in enumerate(items) if item.embedding is None]
    vectors: list[np.ndarray | None] = [item.embedding for item in items]
    if missing:
        for i, vector in zip(missing, _embed([prepared[i][0].text for i in missing]), strict=True):
            vectors[i] = vector
    idem_keys = [keys.idempotency(item.idempotency_key) for item in items if item.idempotency_key]
    client = get_redis()
    for _ in range(_MAX_ATTEMPTS):
        added_events = []
        done: dict[int, str] = {}
        with client.pipeline(transaction=True) as pipe:
            try:
                hold_lease(pipe, lease)
                if idem_keys:
                    pipe.watch(*idem_keys)
                    applied = dict(zip(idem_keys, pipe.mget(idem_keys), strict=True))
                    done = {
                        i: applied[keys.idempotency(item.idempotency_key)].decode()
                        for i, item in enumerate(items)
                        if item.idempotency_key and applied[keys.idempotency(item.idempotency_key)]
                    }
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
            memories.append(get_memory_any(done[i]))
            continue
        memory.ttl_seconds = ttl
        memories.append(memory)
    return memories


def get_memory_any(memory_id: str) -> Memory:
    from memory.selectors import get_memory

    return get_memory(memory_id=memory_id, include_deleted=True)


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


# --- Changes to one memory ----------------------------------------------------------------------


@dataclass
class _Change:
    """What a mutation does to a memory it has just read (inside WATCH)."""

    after: Memory
    event: HistoryEvent
    fields: dict[str, Any] = field(default_factory=dict)
    also: Callable[[Pipeline], None] | None = None


def _check_actor_may_change(
    memory: Memory, actor: Actor, change: Change, *, deleted_by: Actor | None = None
) -> None:
    """Asked inside the WATCH, on the memory as it is: a lock set a moment ago still counts."""
    may_change(actor=actor, memory=memory, change=change, deleted_by=deleted_by).enforce()


def _mutate(
    memory_id: str,
    build: Callable[[Memory, Pipeline], _Change],
    *,
    expected_version: int | None,
    idempotency_key: str = "",
    lease: Lease | None = None,
) -> Memory:
    validate_id(memory_id, name="memory_id")
    client = get_redis()
    key = keys.memory(memory_id)
    idem_key = keys.idempotency(idempotency_key) if idempotency_key else ""
    for _ in range(_MAX_ATTEMPTS):
        with client.pipeline(transaction=True) as pipe:
            try:
                hold_lease(pipe, lease)
                pipe.watch(key, *([idem_key] if idem_key else []))
                if idem_key and pipe.exists(idem_key):
                    pipe.reset()
                    return get_memory_any(memory_id)
                raw = pipe.hgetall(key)
                if not raw:
                    raise MemoryNotFound(f"no memory {memory_id}")
                before = from_hash(raw, ttl_seconds=ttl_or_none(pipe.ttl(key)))
                if expected_version is not None and before.version != expected_version:
                    raise VersionConflict(
                        f"memory {memory_id} is at version {before.version}, not {expected_version}; reload"
                    )
                change = build(before, pipe)
                pipe.multi()
                if change.fields:
                    pipe.hset(key, mapping=change.fields)
                if change.also:
                    change.also(pipe)
                events.record(pipe, change.event)
                if idem_key:
                    pipe.set(idem_key, memory_id, ex=IDEMPOTENCY_TTL_SECONDS)
                pipe.execute()
            except redis.WatchError:
                continue
        events.publish([change.event])
        return change.after
    raise VersionConflict(f"memory {memory_id} is changing too fast; try again")


def update_memory(
    *,
    memory_id: str,
    actor: Actor,
    text: str | None = None,
    type: MemoryType | str | None = None,
    topics: Sequence[str] | None = None,
    entities: Sequence[str] | None = None,
    entity_hints: Sequence[str] = (),
    event_date: float | _Default | None = DEFAULT_TTL,
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
    new_type = _memory_type(type) if type is not None else None
    new_topics = normalise_tags(list(topics), name="topics") if topics is not None else None
    new_entities = normalise_tags(list(entities), name="entities") if entities is not None else None
    hints = normalise_tags(list(entity_hints), name="entities")
    # Embed outside the WATCH window; the new text does not depend on the old state.
    vector = _embed([new_text])[0] if new_text is not None else None

    def build(before: Memory, pipe: Pipeline) -> _Change:
        _check_actor_may_change(before, actor, Change.UPDATE)
        after = replace(
            before,
            text=new_text if new_text is not None else before.text,
            type=new_type or before.type,
            topics=new_topics if new_topics is not None else before.topics,
            entities=_entities_after(before, text=new_text, entities=new_entities, hints=hints),
            event_date=before.event_date if isinstance(event_date, _Default) else event_date,
            version=before.version + 1,
            updated_at=time.time(),
        )
        after.content_hash = content_hash(after.text)
        fields = to_hash(after, embedding=vector, expires_at=None)
        event = events.memory_updated(before, after, actor, reason)
        return _Change(after=after, event=event, fields=_editable(fields), also=_clear_event_date(after))

    return _mutate(
        memory_id, build, expected_version=expected_version, idempotency_key=idempotency_key, lease=lease
    )


def _entities_after(
    before: Memory, *, text: str | None, entities: list[str] | None, hints: list[str]
) -> list[str]:
    if entities is not None:
        return entities
    if text is None or text == before.text:
        return before.entities
    return entities_for_text(text, known=[*before.entities, *hints])


_EDITABLE = (
    "text",
    "type",
    "topics",
    "entities",
    "event_date",
    "content_hash",
    "version",
    "updated_at",
    "embedding",
)


def _editable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k in _EDITABLE}


def _clear_event_date(after: Memory) -> Callable[[Pipeline], None] | None:
    """`to_hash` omits a missing event date; an explicit None must also remove the stored one."""
    if after.event_date is not None:
        return None
    key = keys.memory(after.id)
    return lambda pipe: pipe.hdel(key, "event_date")


def restore_version(
    *, memory_id: str, version: int, actor: Actor, expected_version: int | None = None
) -> Memory:
    """Bring back the text/type/topics of an earlier version, as a new version."""
    from memory.selectors import memory_history

    target = next(
        (e.new for e in memory_history(memory_id=memory_id) if e.version == version and e.new), None
    )
    if target is None:
        raise InvalidInput(f"memory {memory_id} has no version {version} to restore")
    vector = _embed([target["text"]])[0]

    def build(before: Memory, pipe: Pipeline) -> _Change:
        _check_actor_may_change(before, actor, Change.UPDATE)
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
        fields = _editable(to_hash(after, embedding=vector, expires_at=None))
        return _Change(after=after, event=event, fields=fields, also=_clear_event_date(after))

    return _mutate(memory_id, build, expected_version=expected_version)


def set_pinned(*, memory_id: str, pinned: bool, actor: Actor, reason: str = "") -> Memory:
    return _set_flag(memory_id=memory_id, flag="pinned", value=pinned, actor=actor, reason=reason)


def set_locked(*, memory_id: str, locked: bool, actor: Actor, reason: str = "") -> Memory:
    return _set_flag(memory_id=memory_id, flag="locked", value=locked, actor=actor, reason=reason)


_FLAG_CHANGES = {
    ("pinned", True): Change.PIN,
    ("pinned", False): Change.UNPIN,
    ("locked", True): Change.LOCK,
    ("locked", False): Change.UNLOCK,
}


def _set_flag(*, memory_id: str, flag: str, value: bool, actor: Actor, reason: str) -> Memory:
    def build(before: Memory, pipe: Pipeline) -> _Change:
        _check_actor_may_change(before, actor, _FLAG_CHANGES[(flag, value)])
        after = replace(before, version=before.version + 1, updated_at=time.time())
        setattr(after, flag, value)
        event = events.memory_flag_changed(after, actor, flag=flag, value=value, reason=reason)
        return _Change(
            after=after,
            event=event,
            fields={flag: "1" if value else "0", "version": after.version, "updated_at": after.updated_at},
        )

    return _mutate(memory_id, build, expected_version=None)


def _validate_seconds(value: object, *, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be whole seconds")
    if value <= 0:
        raise InvalidInput(f"{name} must be positive; delete the memory instead")
    return value


def _change_ttl(
    memory_id: str, *, actor: Actor, reason: str, new_ttl: Callable[[Memory], int | None]
) -> Memory:
    """Set the TTL computed from the memory as read inside the WATCH, so concurrent changes compose."""

    def build(before: Memory, pipe: Pipeline) -> _Change:
        _check_actor_may_change(before, actor, Change.EXPIRY)
        ttl_seconds = new_ttl(before)
        after = replace(before, ttl_seconds=ttl_seconds, version=before.version + 1, updated_at=time.time())
        key = keys.memory(memory_id)

        def also(p: Pipeline) -> None:
            if ttl_seconds is None:
                p.persist(key)
                p.hdel(key, "expires_at")
            else:
                p.expire(key, ttl_seconds)
                p.hset(key, "expires_at", time.time() + ttl_seconds)

        event = events.memory_ttl_changed(after, actor, ttl_seconds=ttl_seconds, reason=reason)
        return _Change(
            after=after,
            event=event,
            fields={"version": after.version, "updated_at": after.updated_at},
            also=also,
        )

    return _mutate(memory_id, build, expected_version=None)


def set_ttl(*, memory_id: str, ttl_seconds: int | None, actor: Actor, reason: str = "") -> Memory:
    """Set a TTL in seconds from now, or None to keep the memory forever."""
    ttl = None if ttl_seconds is None else _validate_seconds(ttl_seconds, name="ttl_seconds")
    return _change_ttl(memory_id, actor=actor, reason=reason, new_ttl=lambda before: ttl)


def extend_ttl(*, memory_id: str, seconds: int, actor: Actor, reason: str = "") -> Memory:
    """Add time to a memory that expires (a memory without TTL has nothing to extend)."""
    extra = _validate_seconds(seconds, name="seconds")

    def extended(before: Memory) -> int:
        if before.ttl_seconds is None:
            raise InvalidInput("this memory does not expire; set a TTL instead of extending it")
        return before.ttl_seconds + extra

    return _change_ttl(memory_id, actor=actor, reason=reason, new_ttl=extended)


def record_refused_change(
    *,
    memory_id: str,
    actor: Actor,
    action: str,
    proposed_text: str = "",
    reason: str,
    idempotency_key: str = "",
) -> Memory:
    """Note in the memory's history that `actor` was refused `action` ("update", "delete"); the
    memory itself is unchanged (same version)."""

    def build(before: Memory, pipe: Pipeline) -> _Change:
        event = events.change_refused(
            before, actor, action=action, proposed_text=proposed_text, reason=reason
        )
        return _Change(after=before, event=event)

    return _mutate(memory_id, build, expected_version=None, idempotency_key=idempotency_key)


# --- Delete and restore -------------------------------------------------------------------------


def delete_memory(
    *,
    memory_id: str,
    actor: Actor,
    reason: str = "",
    idempotency_key: str = "",
    lease: Lease | None = None,
) -> Memory:
    """Soft delete: the memory leaves the index at once and can be restored for the grace period."""
    grace = settings.SOFT_DELETE_GRACE_SECONDS

    def build(before: Memory, pipe: Pipeline) -> _Change:
        _check_actor_may_change(before, actor, Change.DELETE)
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
        return _Change(after=after, event=event, fields={"version": after.version}, also=also)

    return _mutate(memory_id, build, expected_version=None, idempotency_key=idempotency_key, lease=lease)


def restore_memory(*, memory_id: str, actor: Actor, reason: str = "") -> Memory:
    """Undo a soft delete within the grace period."""
    from memory.selectors import memory_history

    validate_id(memory_id, name="memory_id")
    client = get_redis()
    trash_key, live_key = keys.trash(memory_id), keys.memory(memory_id)
    for _ in range(_MAX_ATTEMPTS):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(trash_key, live_key)
                raw = pipe.hgetall(trash_key)
                if not raw:
                    raise MemoryNotFound(f"memory {memory_id} is not in the trash (never deleted, or purged)")
                before = from_hash(raw, deleted=True)
                # Written with the delete, in its MULTI: the watched trash key guards it too.
                deletion = events.last_deletion(memory_history(memory_id=memory_id))
                deleted_by = deletion.actor if deletion else None
                _check_actor_may_change(before, actor, Change.RESTORE, deleted_by=deleted_by)
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


# --- Identity -----------------------------------------------------------------------------------


def _extraction_locks(session_ids: Sequence[str]) -> list[str]:
    return [keys.extraction_lock(session_id) for session_id in session_ids]


def move_identity(*, from_user_id: str, to_user_id: str, actor: Actor) -> dict[str, int]:
    """Everything of `from_user_id` (e.g. an anonymous visitor) now belongs to `to_user_id`.

    An extraction job of one of the visitor's sessions may be running (it chose the owner of its
    memories when it started): the move takes the sessions' extraction locks over, so the job's
    remaining writes fail and it is redone for the new owner. The move itself is one transaction
    that WATCHes everything it read, so a memory added meanwhile is moved too, not left behind.
    """
    source = validate_id(from_user_id, name="from_user_id")
    target = validate_scope_id(to_user_id, name="to_user_id")
    if source == target:
        return {"memories": 0, "sessions": 0}
    client = get_redis()
    locks: list[str] = []
    token = ""
    try:
        for _ in range(_MAX_ATTEMPTS):
            sessions = [as_text(s) for s in client.zrange(keys.user_sessions(source), 0, -1)]
            new_locks = [k for k in _extraction_locks(sessions) if k not in locks]
            if new_locks:
                token = take_over(new_locks, seconds=settings.EXTRACTION_LOCK_SECONDS, token=token)
                locks += new_locks
            try:
                moved, result = _move_once(client, source=source, target=target, actor=actor)
            except redis.WatchError:
                continue
            break
        else:
            raise VersionConflict("could not move the memories: too much activity; try again")
    finally:
        release(locks, token)
    events.publish(moved)
    return result


def _move_once(
    client: redis.Redis, *, source: str, target: str, actor: Actor
) -> tuple[list[HistoryEvent], dict[str, int]]:
    from memory import working

    with client.pipeline(transaction=True) as pipe:
        pipe.watch(keys.user_memory_ids(source), keys.user_trash(source), keys.user_sessions(source))
        memory_ids = sorted(as_text(m) for m in pipe.smembers(keys.user_memory_ids(source)))
        stored = [k for m in memory_ids for k in (keys.memory(m), keys.trash(m))]
        if stored:
            pipe.watch(*stored)
        found = [(k, pipe.hgetall(k)) for k in stored]
        trash = pipe.zrange(keys.user_trash(source), 0, -1, withscores=True)
        listed = pipe.zrange(keys.user_sessions(source), 0, -1, withscores=True)
        if listed:
            pipe.watch(*[keys.session(as_text(s)) for s, _ in listed])
        sessions = [(as_text(s), score) for s, score in listed if pipe.exists(keys.session(as_text(s)))]
        moved: list[HistoryEvent] = []
        pipe.multi()
        for redis_key, raw in found:
            if not raw:
                continue
            memory = from_hash(raw)
            memory.scope = replace(memory.scope, user_id=target)
            event = events.memory_moved(memory, actor, from_user=source, to_user=target)
            moved.append(event)
            pipe.hset(redis_key, "user_id", target)
            events.record(pipe, event)
        if memory_ids:
            pipe.sadd(keys.user_memory_ids(target), *memory_ids)
        pipe.delete(keys.user_memory_ids(source))
        if trash:
            pipe.zadd(keys.user_trash(target), {as_text(m): score for m, score in trash})
        pipe.delete(keys.user_trash(source))
        count = working.move_sessions(pipe, sessions=sessions, from_user_id=source, to_user_id=target)
        pipe.zrem(keys.users(), source)
        pipe.zadd(keys.users(), {target: time.time()})
        pipe.execute()
    return moved, {"memories": len(moved), "sessions": count}


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
        with client.pipeline(transaction=True) as pipe:
            for memory_id in found.memory_ids:
                pipe.delete(
                    keys.memory(memory_id),
                    keys.trash(memory_id),
                    keys.history(memory_id),
                    keys.memory_stats(memory_id),
                )
            for family in (
                found.session_keys,
                found.extraction_keys,
                found.plans,
                found.idempotency_keys,
                found.user_keys,
            ):
                if family:
                    pipe.delete(*family)
            pipe.zrem(keys.users(), user_id)
            pipe.execute()
        mutation_events = streams.scrub(
            keys.mutation_stream(), fields={"user_id": [user_id]}, memory_ids=found.memory_ids
        )
        by_user_or_session = {"user_id": [user_id], "session_id": found.session_ids}
        queued = streams.scrub(keys.turn_stream(), fields=by_user_or_session, group=keys.TURN_GROUP)
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
