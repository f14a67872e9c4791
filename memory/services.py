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
from typing import Any, Literal

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
    check_not_moved,
    clear_event_date,
    editable,
    embed,
    memory_type_of,
    mutate,
    queue_mutation,
    ttl_value,
    validate_new_id,
    validate_scope,
    validate_seconds,
    validate_text,
)
from memory.policy import Change
from memory.query import normalise_tags, validate_id
from memory.records import content_hash, from_hash, to_hash, ttl_or_none
from memory.selectors import get_memory, memory_history
from memory.types import (
    Actor,
    ActorKind,
    HistoryEvent,
    IdUnavailable,
    InvalidInput,
    Lease,
    Memory,
    MemoryGone,
    MemoryNotFound,
    MemoryType,
    RequestReplayMismatch,
    Scope,
    StaleVersion,
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
    (the caller's key, scoped by the caller, hashed), `fingerprint` its content. The same key again
    with the same content returns the memories the first call added; with other content it is
    refused (RequestReplayMismatch), so a key can never stand for two different batches.

    The request's marker and its items' markers are separate key families named by the hash, so
    no key a caller sends can name another request's marker or item ("k:0" is not item 0 of "k")."""

    key: str  # sha256 of the caller's scoped key
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
        return cls(
            key=hashlib.sha256(key.encode()).hexdigest(),
            fingerprint=hashlib.sha256(content.encode()).hexdigest(),
        )

    @property
    def marker_key(self) -> str:
        """The idempotency key that holds the request's fingerprint."""
        return f"request:{self.key}"

    def item_key(self, index: int) -> str:
        """The idempotency key of the request's `index`th item (holds the memory id it added)."""
        return f"request-item:{self.key}:{index}"


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
    fields = to_hash(memory, embedding=vector, expires_at=expires_at)
    if not ttl:
        # No history list until the first change (memory.events.added_entry rebuilds this one).
        fields.update(events.added_fields(event, memory))
    pipe.hset(key, mapping=fields)
    if ttl:
        pipe.expire(key, ttl)
    pipe.sadd(keys.user_memory_ids(memory.scope.user_id), memory.id)
    events.record(pipe, event, listed=bool(ttl))


def _list_users(client: redis.Redis, memories: Sequence[Memory]) -> None:
    """Put the memories' users in the users index (another slot than the memory tier on a
    cluster), before the memories are written: a kill in between leaves a listed user with
    nothing new, never a memory whose user no reader (the retention sweep) finds."""
    latest = {m.scope.user_id: m.updated_at for m in memories}
    with client.pipeline(transaction=False) as pipe:
        for user_id, at in latest.items():
            pipe.zadd(keys.users(user_id), {user_id: at})
        pipe.execute()


def _id_keys(memory_id: str) -> list[str]:
    """Every key that says an id was given to a memory: the memory live or in the trash, its claim,
    and what outlives it until the retention sweep (its history, its access stats)."""
    return [
        keys.memory(memory_id),
        keys.trash(memory_id),
        keys.memory_id_claim(memory_id),
        keys.history(memory_id),
        keys.memory_stats(memory_id),
    ]


def _id_used(conn: redis.Redis | Pipeline, memory_id: str) -> bool:
    return bool(conn.exists(*_id_keys(memory_id)))


def _unavailable_id(memory_id: str) -> IdUnavailable:
    # The same words whoever used the id and whether it is live, deleted or long gone: a caller
    # learns only that it may not have it, never whose it is.
    return IdUnavailable(f"the id {memory_id} cannot be used for a new memory; choose another id")


def _claim(memory: Memory, actor: Actor, now: float) -> str:
    """What a claim records: which agent's memory took the id, who made it and when (no user id:
    the claim outlives an erase)."""
    by = actor.id if actor.kind in (ActorKind.APP, ActorKind.STAFF) else str(actor.kind)
    return json.dumps({"agent_id": memory.scope.agent_id, "by": by, "at": now})


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
    returned in their place (`MemoryGone` when it has since been purged or expired). With a
    `request`, each item's key is the request's and the batch is refused when the key was used for
    other content. With a `lease`, nothing is added unless its lock is still held (`LeaseLost`).

    A chosen id (`NewMemory.id`) is claimed for good in the same transaction: an id that was ever
    given to a memory (live, in the trash, claimed, or with history or stats left) is refused
    (`IdUnavailable`), so a new memory never takes over another's history or index entries.
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
    chosen_keys = [k for i in chosen for k in _id_keys(items[i].id)]
    request_key = keys.idempotency(request.marker_key) if request is not None else ""
    client = get_redis()
    _list_users(client, [memory for memory, _ in prepared])
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
                    # A raw MGET: redis-py's cluster pipeline refuses its mget() (one slot here).
                    marked = pipe.execute_command("MGET", *idem_keys)
                    applied = dict(zip(idem_keys, marked, strict=True))
                    done = {
                        i: applied[keys.idempotency(item.idempotency_key)].decode()
                        for i, item in enumerate(items)
                        if item.idempotency_key and applied[keys.idempotency(item.idempotency_key)]
                    }
                if chosen_keys:
                    pipe.watch(*chosen_keys)
                    for i in chosen:
                        if i not in done and _id_used(pipe, items[i].id):
                            raise _unavailable_id(items[i].id)
                pipe.multi()
                for i, ((memory, ttl), vector) in enumerate(zip(prepared, vectors, strict=True)):
                    if i in done:
                        continue
                    assert vector is not None
                    at = events.added_at(memory, now=now)
                    event = events.memory_added(memory, actor, reason, at=at)
                    added_events.append(event)
                    _queue_new(pipe, memory, vector, ttl, event)
                    if items[i].id:
                        pipe.set(keys.memory_id_claim(memory.id), _claim(memory, actor, now), nx=True)
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
            try:
                memories.append(get_memory(memory_id=done[i], owner=owner, include_deleted=True))
            except MemoryNotFound as exc:
                raise MemoryGone(
                    f"this request was applied before, but memory {done[i]} it added has since "
                    "been removed for good (expired or purged); send it again under a new key"
                ) from exc
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


@dataclass(frozen=True)
class SavedMemory:
    """One item of `save_memories`: the memory as it now is, and what the call did to it."""

    memory: Memory
    outcome: Literal["added", "updated", "unchanged"]


# A save that loses a race (an id taken, a memory edited meanwhile) checks every item again.
SAVE_ATTEMPTS = 5
_SAVED_FIELDS = ("text", "type", "topics", "entities", "event_date")


def _content(item: NewMemory) -> dict[str, Any]:
    """What an item says a memory holds, in stored form (the fields an edit may change)."""
    return {
        "text": validate_text(item.text),
        "type": memory_type_of(item.type),
        "topics": normalise_tags(item.topics, name="topics"),
        "entities": normalise_tags(item.entities, name="entities"),
        "event_date": item.event_date,
    }


def _plan_save(item: NewMemory, *, owner: Owner, actor: Actor) -> tuple[str, Memory | None]:
    """("add", None), ("unchanged", memory) or ("update", memory) for one item; raises a refusal."""
    memory_id = validate_new_id(item.id)
    try:
        before = get_memory(memory_id=memory_id, owner=owner, include_deleted=True)
    except MemoryNotFound:
        if _id_used(get_redis(), memory_id):
            raise _unavailable_id(memory_id) from None
        return "add", None
    if before.deleted:
        raise MemoryGone(f"memory {memory_id} is deleted (in the trash); restore it, or choose another id")
    check_not_moved(before, asdict(validate_scope(item.scope)))
    content = _content(item)
    if all(content[name] == getattr(before, name) for name in _SAVED_FIELDS):
        return "unchanged", before
    check_actor_may_change(before, actor, Change.UPDATE)
    return "update", before


def save_memories(
    *, items: Sequence[NewMemory], owner: Owner, actor: Actor, reason: str = "", publish: bool = True
) -> list[SavedMemory]:
    """Create or update memories by the ids their caller gave them: an upsert (Agent Memory
    Server's create). Every item needs an `id`. Per item:

    - an id never used: the memory is added (and the id claimed for good, see `add_memories`);
    - the id of a live memory within `owner`, with the same content (text, type, topics,
      entities, event date): left as it is ("unchanged", no new version);
    - the same, with other content: an edit ("updated": a new version, in its history,
      re-embedded when the text changed); it may not move the memory to another user, agent,
      namespace or session (InvalidInput), and the policy is asked (MemoryLocked);
    - the id of `owner`'s memory in the trash: MemoryGone (restore it, or choose another id);
    - any other id that was used (another caller's memory, or one gone): IdUnavailable.

    Every item is checked before anything is written, so a refusal changes nothing. The new
    memories are one transaction and each edit another (checked against the version read); a
    write that loses a race checks everything again, where what it already wrote reads as
    unchanged and keeps its outcome."""
    chosen = [validate_new_id(item.id) if item.id else "" for item in items]
    if not all(chosen):
        raise InvalidInput("every memory needs an id here")
    if len(set(chosen)) < len(chosen):
        raise InvalidInput("two memories have the same id")
    written: dict[int, Literal["added", "updated"]] = {}
    for _ in range(SAVE_ATTEMPTS):
        plans = [_plan_save(item, owner=owner, actor=actor) for item in items]
        now: dict[int, Memory] = {}
        try:
            new = [i for i, (kind, _) in enumerate(plans) if kind == "add"]
            if new:
                fresh = [items[i] for i in new]
                added = add_memories(items=fresh, actor=actor, reason=reason, publish=publish)
                for i, memory in zip(new, added, strict=True):
                    now[i], written[i] = memory, "added"
            for i, (kind, before) in enumerate(plans):
                if kind == "unchanged" and before is not None:
                    now[i] = before
                elif kind == "update" and before is not None:
                    content = _content(items[i])
                    now[i] = update_memory(
                        memory_id=before.id,
                        owner=owner,
                        actor=actor,
                        text=content["text"] if content["text"] != before.text else None,
                        type=content["type"],
                        topics=content["topics"],
                        entities=content["entities"],
                        event_date=content["event_date"],
                        reason=reason,
                        expected_version=before.version,
                    )
                    written.setdefault(i, "updated")
        except (IdUnavailable, StaleVersion, MemoryNotFound):
            continue
        return [SavedMemory(now[i], written.get(i, "unchanged")) for i in range(len(items))]
    raise VersionConflict("could not save the memories: too much contention; try again")


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


def _deletion(before: Memory, actor: Actor, reason: str) -> Mutation:
    """A soft delete of `before` (read inside the WATCH), if the policy lets `actor` make it."""
    check_actor_may_change(before, actor, Change.DELETE)
    grace = settings.SOFT_DELETE_GRACE_SECONDS
    memory_id = before.id
    after = replace(before, deleted=True, version=before.version + 1)
    now = time.time()

    def also(p: Pipeline) -> None:
        trash_key = keys.trash(memory_id)
        p.hset(
            keys.memory(memory_id),
            mapping={"deleted_at": now, "ttl_before_delete": before.ttl_seconds or 0},
        )
        # As a raw command: redis-py's cluster pipeline refuses its rename() (same slot here).
        p.execute_command("RENAME", keys.memory(memory_id), trash_key)
        if grace > 0:
            p.expire(trash_key, grace)
        else:
            p.delete(trash_key)
        p.zadd(keys.user_trash(before.scope.user_id), {memory_id: now})

    event = events.memory_deleted(after, actor, reason, grace_seconds=grace)
    return Mutation(after=after, event=event, fields={"version": after.version}, also=also)


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
    return mutate(
        memory_id,
        lambda before, pipe: _deletion(before, actor, reason),
        owner=owner,
        idempotency_key=idempotency_key,
        lease=lease,
    )


def delete_memories(
    *, memory_ids: Sequence[str], owner: Owner, actor: Actor, reason: str = ""
) -> list[Memory]:
    """Soft-delete several memories in one transaction: all of them or none.

    Ids that name no live memory within `owner` (missing, already deleted, another's, or of a
    shape no memory has) are skipped, as a missing one is; the rest are each checked against the
    policy first, and one refusal (`MemoryLocked`: pinned or locked by staff) deletes nothing.
    Returns the memories deleted, in the order asked (each id once)."""
    wanted = []
    for memory_id in dict.fromkeys(memory_ids):
        try:
            wanted.append(validate_id(memory_id, name="memory_id"))
        except InvalidInput:
            continue
    if not wanted:
        return []
    client = get_redis()
    for _ in range(MAX_ATTEMPTS):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(*[keys.memory(m) for m in wanted])
                found = []
                for memory_id in wanted:
                    key = keys.memory(memory_id)
                    raw = pipe.hgetall(key)
                    if raw:
                        memory = from_hash(raw, ttl_seconds=ttl_or_none(pipe.ttl(key)))
                        if owner.admits(memory):
                            found.append((memory, events.added_entry(memory, raw)))
                changes = [(_deletion(before, actor, reason), added) for before, added in found]
                pipe.multi()
                for change, added in changes:
                    queue_mutation(pipe, change, added=added)
                pipe.execute()
            except redis.WatchError:
                continue
        events.publish([c.event for c, _ in changes])
        return [c.after for c, _ in changes]
    raise VersionConflict("the memories are changing too fast; try again")


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
                pipe.execute_command("RENAME", trash_key, live_key)  # one slot (see _deletion)
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
