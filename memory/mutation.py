"""What every write to memory shares: its input checks (text, scope, type, lifetime) and the
WATCH-and-retry transaction a change to one memory runs in (`mutate`), with its idempotency key.

Concurrency: each mutation WATCHes the memory's key and retries on conflict, so two writers never
lose an update; `expected_version` lets a caller (an inspector form) refuse to overwrite a change it
has not seen.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import redis
from django.conf import settings
from redis.client import Pipeline

from core.embeddings import get_embedder
from core.redis_client import get_redis
from core.text import clean_text
from memory import events, keys
from memory.access import Owner
from memory.lease import hold as hold_lease
from memory.policy import Change, may_change
from memory.query import validate_id, validate_scope_id
from memory.records import from_hash, ttl_or_none
from memory.schema import MEMORY
from memory.selectors import get_memory
from memory.types import (
    Actor,
    HistoryEvent,
    InvalidInput,
    Lease,
    Memory,
    MemoryNotFound,
    MemoryType,
    Scope,
    StaleVersion,
    VersionConflict,
)

MAX_ATTEMPTS = 20


class Default:
    """Marker for "use the type's default TTL"."""


DEFAULT_TTL = Default()
TTL = int | None | Default


class Unchanged:
    """Marker for "keep the stored value", where None means "remove it" (an edit's event date)."""


UNCHANGED = Unchanged()


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


# A caller-chosen id for a new memory (an outside client's ULID): a short plain token, so it is safe
# in every key and URL it will be part of.
_NEW_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def validate_new_id(value: object) -> str:
    if not isinstance(value, str) or not _NEW_ID.fullmatch(value):
        raise InvalidInput(
            "id must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return value


def validate_seconds(value: object, *, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be whole seconds")
    if value <= 0:
        raise InvalidInput(f"{name} must be positive; delete the memory instead")
    return value


def validate_scope(scope: Scope) -> Scope:
    return Scope(
        user_id=validate_scope_id(scope.user_id, name="user_id"),
        agent_id=validate_scope_id(scope.agent_id, name="agent_id"),
        namespace=validate_scope_id(scope.namespace, name="namespace"),
        session_id=validate_scope_id(scope.session_id, name="session_id", required=False),
    )


def memory_type_of(value: object) -> MemoryType:
    try:
        return MemoryType(str(value))
    except ValueError as exc:
        raise InvalidInput(
            f"unknown memory type {value!r}; use {', '.join(t.value for t in MemoryType)}"
        ) from exc


def ttl_value(
    ttl_seconds: TTL, memory_type: MemoryType, *, event_date: float | None = None, now: float | None = None
) -> int | None:
    ttl = default_ttl(memory_type) if isinstance(ttl_seconds, Default) else ttl_seconds
    if isinstance(ttl_seconds, Default) and ttl is not None and event_date is not None:
        # An event still ahead is kept until the default lifetime after it: "my exam is on 18
        # December", said in September, must not be forgotten before the exam.
        ahead = event_date - (time.time() if now is None else now)
        if ahead > 0:
            ttl += int(ahead)
    if ttl is not None and (not isinstance(ttl, int) or ttl <= 0):
        raise InvalidInput("ttl_seconds must be a positive number of seconds or None")
    return ttl


def embed(texts: Sequence[str]) -> np.ndarray:
    return get_embedder().embed(list(texts))


IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600


@dataclass
class Mutation:
    """What a mutation does to a memory it has just read (inside WATCH)."""

    after: Memory
    event: HistoryEvent
    fields: dict[str, Any] = field(default_factory=dict)
    also: Callable[[Pipeline], None] | None = None


def check_actor_may_change(
    memory: Memory, actor: Actor, change: Change, *, deleted_by: Actor | None = None
) -> None:
    """Asked inside the WATCH, on the memory as it is: a lock set a moment ago still counts."""
    may_change(actor=actor, memory=memory, change=change, deleted_by=deleted_by).enforce()


def mutate(
    memory_id: str,
    build: Callable[[Memory, Pipeline], Mutation],
    *,
    owner: Owner,
    expected_version: int | None = None,
    idempotency_key: str = "",
    lease: Lease | None = None,
) -> Memory:
    validate_id(memory_id, name="memory_id")
    client = get_redis()
    key = keys.memory(memory_id)
    idem_key = keys.idempotency(idempotency_key) if idempotency_key else ""
    for _ in range(MAX_ATTEMPTS):
        with client.pipeline(transaction=True) as pipe:
            try:
                hold_lease(pipe, lease)
                pipe.watch(key, *([idem_key] if idem_key else []))
                if idem_key and pipe.exists(idem_key):
                    pipe.reset()
                    return get_memory(memory_id=memory_id, owner=owner, include_deleted=True)
                raw = pipe.hgetall(key)
                if not raw:
                    raise MemoryNotFound(f"no memory {memory_id}")
                before = owner.require(from_hash(raw, ttl_seconds=ttl_or_none(pipe.ttl(key))))
                if expected_version is not None and before.version != expected_version:
                    raise StaleVersion(
                        f"memory {memory_id} is at version {before.version}, not {expected_version}; reload"
                    )
                added = events.added_entry(before, raw)
                change = build(before, pipe)
                pipe.multi()
                queue_mutation(pipe, change, added=added)
                if idem_key:
                    pipe.set(idem_key, memory_id, ex=IDEMPOTENCY_TTL_SECONDS)
                pipe.execute()
            except redis.WatchError:
                continue
        events.publish([change.event])
        return change.after
    raise VersionConflict(f"memory {memory_id} is changing too fast; try again")


def queue_mutation(pipe: Pipeline, change: Mutation, *, added: HistoryEvent) -> None:
    """Queue one built change on a MULTI pipeline: its fields, its extra steps, its history entry
    (after the memory's rebuilt `added` entry when this is its first change: events.record)."""
    if change.fields:
        pipe.hset(keys.memory(change.after.id), mapping=change.fields)
    if change.also:
        change.also(pipe)
    events.record(pipe, change.event, added=added)


SCOPE_FIELDS = ("user_id", "agent_id", "namespace", "session_id")


def check_not_moved(before: Memory, wanted: Mapping[str, str]) -> None:
    """Refuse a change that would move a memory to another user, agent, namespace or session
    (`wanted`: scope field -> the stored value asked for; fields left out are not asked). A memory
    keeps where it was made: its history, the user's index and an erase all depend on it."""
    for name in SCOPE_FIELDS:
        if name in wanted and wanted[name] != getattr(before.scope, name):
            raise InvalidInput(f"{name} cannot be changed; create the memory again where it belongs")


def editable(fields: dict[str, Any]) -> dict[str, Any]:
    """The hash fields an edit rewrites (memory.schema's `editable=True`)."""
    return {k: v for k, v in fields.items() if k in MEMORY.editable}


def clear_event_date(after: Memory) -> Callable[[Pipeline], None] | None:
    """`to_hash` omits a missing event date; an explicit None must also remove the stored one."""
    if after.event_date is not None:
        return None
    key = keys.memory(after.id)
    return lambda pipe: pipe.hdel(key, "event_date")


def change_ttl(
    memory_id: str, *, owner: Owner, actor: Actor, reason: str, new_ttl: Callable[[Memory], int | None]
) -> Memory:
    """Set the TTL computed from the memory as read inside the WATCH, so concurrent changes compose."""

    def build(before: Memory, pipe: Pipeline) -> Mutation:
        check_actor_may_change(before, actor, Change.EXPIRY)
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
        return Mutation(
            after=after,
            event=event,
            fields={"version": after.version, "updated_at": after.updated_at},
            also=also,
        )

    return mutate(memory_id, build, owner=owner)
