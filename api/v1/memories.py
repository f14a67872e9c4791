"""/api/v1/memories: long-term memories by id, thin over memory.services and memory.selectors.

Every call runs as the caller's key (`request.auth`, an `api.callers.ApiCaller`): its owner
confines what it may name (an app key sees only its agent's memories in its namespaces; any other
id is "not found", as a missing one), and its actor is who the memory's history says made the
change.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Header, Path, Query, Router, Status

from api.callers import ApiCaller, request_caller
from api.problems import ERRORS, PRECONDITION_ERRORS, PreconditionFailed, ProblemError
from api.v1.cursors import decode_cursor, encode_cursor
from api.v1.memory_schemas import (
    HISTORY_PAGE_DEFAULT,
    CreateMemoriesIn,
    ExtendTtlIn,
    HistoryLimit,
    HistoryOut,
    LockIn,
    MemoriesOut,
    MemoryOut,
    MemoryPatchIn,
    NewMemoryIn,
    PinIn,
    Reason,
    TtlIn,
    TtlOut,
)
from api.v1.presenters import memory_for
from memory.mutation import DEFAULT_TTL, UNCHANGED
from memory.query import validate_id
from memory.selectors import get_memory, memory_history_page, memory_ttl
from memory.services import (
    IdempotentRequest,
    NewMemory,
    add_memories,
    delete_memory,
    extend_ttl,
    restore_memory,
    set_locked,
    set_pinned,
    set_ttl,
    update_memory,
)
from memory.types import InvalidInput, Memory, MemoryNotFound, RequestReplayMismatch, StaleVersion

router = Router(tags=["memories"])

IDEMPOTENCY_KEY_MAX = 200
# No length bound here: an id no memory can have is "not found" (`_memory_id`), not a 422.
MEMORY_ID = Path(..., description="The memory's id (as a create or a search returned it)")
# The longest If-Match this API reads: a version is a small number, quoted or not.
_MAX_VERSION_DIGITS = 18


class IdempotencyKeyReused(ProblemError):
    """The key stands for another batch: a conflict with what it already did (the request itself
    is well formed, so it is no 422)."""

    status = 409
    title = "idempotency key reused"


def _memory_id(value: str) -> str:
    """An id no memory can have (too long, control characters) is simply not found: a caller
    probing with odd ids gets the answer a missing id gets."""
    try:
        return validate_id(value, name="memory_id")
    except InvalidInput as exc:
        raise MemoryNotFound(f"no memory {value[:64]}") from exc


def _expected_version(if_match: str | None) -> int | None:
    """The version an `If-Match` names (`3`, `"3"` or `W/"3"`); None without one or for `*`."""
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not (value.isascii() and value.isdigit() and len(value) <= _MAX_VERSION_DIGITS):
        raise InvalidInput('If-Match must be the version the memory was read at, e.g. "3" (its ETag)')
    return int(value)


def _with_etag(response: HttpResponse, caller: ApiCaller, memory: Memory) -> Memory:
    response["ETag"] = f'"{memory.version}"'
    return memory_for(caller, memory)


def _new_memory(caller: ApiCaller, item: NewMemoryIn) -> NewMemory:
    return NewMemory(
        text=item.text,
        scope=caller.scope(
            user_id=item.user_id, namespace=item.namespace, session_id=item.session_id, agent_id=item.agent_id
        ),
        type=item.type,
        topics=list(item.topics),
        entities=list(item.entities),
        event_date=item.event_date,
        source=list(item.source),
        # Left out: the type's default lifetime; null: never expires.
        ttl_seconds=item.ttl_seconds if "ttl_seconds" in item.model_fields_set else DEFAULT_TTL,
    )


@router.post(
    "",
    response={201: MemoriesOut, **ERRORS},
    summary="Add memories (a batch)",
    description=(
        "Adds every memory of the batch, or none. With an `Idempotency-Key`, sending the same batch "
        "again returns the memories the first request added and adds nothing; the same key with a "
        "different batch is refused (409). Keys are per API key and kept for 7 days."
    ),
)
def create_memories(
    request: HttpRequest,
    body: CreateMemoriesIn,
    idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", min_length=1, max_length=IDEMPOTENCY_KEY_MAX
    ),
) -> Any:
    caller = request_caller(request)
    items = [_new_memory(caller, item) for item in body.memories]
    once = (
        IdempotentRequest.of(key=f"api:{caller.key_id}:{idempotency_key}", items=items, reason=body.reason)
        if idempotency_key
        else None
    )
    try:
        memories = add_memories(
            items=items, actor=caller.actor, reason=body.reason, publish=True, request=once
        )
    except RequestReplayMismatch as exc:
        raise IdempotencyKeyReused(str(exc)) from exc
    return Status(201, {"memories": [memory_for(caller, m) for m in memories]})


@router.get("/{memory_id}", response={200: MemoryOut, **ERRORS}, summary="Get a memory")
def get_one(request: HttpRequest, response: HttpResponse, memory_id: str = MEMORY_ID) -> Any:
    """A live memory, or one in the trash (`deleted: true`) until its grace period ends. The ETag
    is its version: send it back as `If-Match` to update only what you read."""
    caller = request_caller(request)
    memory = get_memory(memory_id=_memory_id(memory_id), owner=caller.owner())
    return _with_etag(response, caller, memory)


@router.patch(
    "/{memory_id}", response={200: MemoryOut, **ERRORS, **PRECONDITION_ERRORS}, summary="Update a memory"
)
def update(
    request: HttpRequest,
    response: HttpResponse,
    *,
    memory_id: str = MEMORY_ID,
    body: MemoryPatchIn,
    if_match: str | None = Header(None, alias="If-Match", max_length=64),
) -> Any:
    """Changes the fields sent (a new version). With `If-Match: "<version>"` the change is made only
    if the memory is still at that version, else 412 and nothing changes."""
    caller = request_caller(request)
    try:
        memory = update_memory(
            memory_id=_memory_id(memory_id),
            owner=caller.owner(),
            actor=caller.actor,
            text=body.text,
            type=body.type,
            topics=body.topics,
            entities=body.entities,
            event_date=body.event_date if "event_date" in body.model_fields_set else UNCHANGED,
            reason=body.reason,
            expected_version=_expected_version(if_match),
        )
    except StaleVersion as exc:
        raise PreconditionFailed(str(exc)) from exc
    return _with_etag(response, caller, memory)


@router.delete("/{memory_id}", response={200: MemoryOut, **ERRORS}, summary="Delete a memory")
def delete(request: HttpRequest, memory_id: str = MEMORY_ID, reason: Reason = "") -> Any:
    """A soft delete: the memory leaves every search at once and can be restored until the grace
    period ends."""
    caller = request_caller(request)
    memory = delete_memory(
        memory_id=_memory_id(memory_id), owner=caller.owner(), actor=caller.actor, reason=reason
    )
    return memory_for(caller, memory)


@router.post("/{memory_id}/restore", response={200: MemoryOut, **ERRORS}, summary="Restore a deleted memory")
def restore(request: HttpRequest, memory_id: str = MEMORY_ID, reason: Reason = "") -> Any:
    caller = request_caller(request)
    memory = restore_memory(
        memory_id=_memory_id(memory_id), owner=caller.owner(), actor=caller.actor, reason=reason
    )
    return memory_for(caller, memory)


@router.get("/{memory_id}/history", response={200: HistoryOut, **ERRORS}, summary="A memory's history")
def history(
    request: HttpRequest,
    memory_id: str = MEMORY_ID,
    cursor: str | None = Query(None, max_length=64),
    limit: HistoryLimit = HISTORY_PAGE_DEFAULT,
) -> Any:
    """Every change, oldest first, with who made it (`actor`; API keys are `api-key:<name>`).
    Pass `next` back as `cursor` for the following page."""
    memory_id = _memory_id(memory_id)
    page = memory_history_page(
        memory_id=memory_id, owner=request_caller(request).owner(), start=decode_cursor(cursor), limit=limit
    )
    next_cursor = None if page.next_start is None else encode_cursor(page.next_start)
    return {"memory_id": memory_id, "events": page.events, "next": next_cursor}


@router.post("/{memory_id}/pin", response={200: MemoryOut, **ERRORS}, summary="Pin or unpin (staff keys)")
def pin(request: HttpRequest, *, memory_id: str = MEMORY_ID, body: PinIn) -> Any:
    """A pinned memory joins every prompt of its user; app keys may not pin (403)."""
    caller = request_caller(request)
    caller.require_staff()
    memory = set_pinned(
        memory_id=_memory_id(memory_id),
        owner=caller.owner(),
        pinned=body.pinned,
        actor=caller.actor,
        reason=body.reason,
    )
    return memory_for(caller, memory)


@router.post("/{memory_id}/lock", response={200: MemoryOut, **ERRORS}, summary="Lock or unlock (staff keys)")
def lock(request: HttpRequest, *, memory_id: str = MEMORY_ID, body: LockIn) -> Any:
    """A locked memory is a support correction: only staff may change it; app keys may not lock (403)."""
    caller = request_caller(request)
    caller.require_staff()
    memory = set_locked(
        memory_id=_memory_id(memory_id),
        owner=caller.owner(),
        locked=body.locked,
        actor=caller.actor,
        reason=body.reason,
    )
    return memory_for(caller, memory)


@router.get("/{memory_id}/ttl", response={200: TtlOut, **ERRORS}, summary="Time left before a memory expires")
def get_ttl(request: HttpRequest, memory_id: str = MEMORY_ID) -> Any:
    memory_id = _memory_id(memory_id)
    ttl = memory_ttl(memory_id=memory_id, owner=request_caller(request).owner())
    return {"memory_id": memory_id, "ttl_seconds": ttl, "version": None}


def _ttl_out(memory: Memory) -> dict[str, Any]:
    return {"memory_id": memory.id, "ttl_seconds": memory.ttl_seconds, "version": memory.version}


@router.put("/{memory_id}/ttl", response={200: TtlOut, **ERRORS}, summary="Set when a memory expires")
def put_ttl(request: HttpRequest, *, memory_id: str = MEMORY_ID, body: TtlIn) -> Any:
    caller = request_caller(request)
    memory = set_ttl(
        memory_id=_memory_id(memory_id),
        owner=caller.owner(),
        ttl_seconds=body.ttl_seconds,
        actor=caller.actor,
        reason=body.reason,
    )
    return _ttl_out(memory)


@router.post("/{memory_id}/ttl/extend", response={200: TtlOut, **ERRORS}, summary="Give a memory more time")
def extend(request: HttpRequest, *, memory_id: str = MEMORY_ID, body: ExtendTtlIn) -> Any:
    caller = request_caller(request)
    memory = extend_ttl(
        memory_id=_memory_id(memory_id),
        owner=caller.owner(),
        seconds=body.seconds,
        actor=caller.actor,
        reason=body.reason,
    )
    return _ttl_out(memory)
