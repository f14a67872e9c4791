"""Long-term memory as Agent Memory Server serves it: create, get, edit, delete, search, and the
memory prompt. Thin: each view maps the request onto one engine call through the caller's key."""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router

from api.callers import request_caller
from api.compat import mapping
from api.compat.schemas import (
    AckOut,
    CreateMemoriesIn,
    MemoryEditIn,
    MemoryPromptIn,
    MemoryPromptOut,
    MemoryRecordOut,
    MemoryRecordResultsOut,
    SearchIn,
)
from api.problems import ERRORS
from memory.mutation import UNCHANGED, check_not_moved
from memory.prompt import prompt_in_reach
from memory.selectors import get_memory
from memory.services import NewMemory, delete_memories, save_memories, update_memory
from memory.types import InvalidInput

router = Router(tags=["ams long-term memory"])

MAX_DELETE_IDS = 100
# What a memory prompt's search can be narrowed by (build_prompt's own scope and size).
PROMPT_SEARCH_FIELDS = {"namespace", "user_id", "limit", "offset"}
# The chat's own instructions speak as Engram; an outside agent gets only what its memory is for.
PROMPT_INSTRUCTIONS = (
    "Use what you remember about the user when it helps, never invent memories, and say so when "
    "you do not know."
)


@router.post("/v1/long-term-memory/", response={200: AckOut, **ERRORS})
def create_memories(request: HttpRequest, body: CreateMemoriesIn) -> dict[str, Any]:
    """Each record keeps the id the client gave it, and a create by id is an upsert, as in AMS: a
    new id is stored, an id of the key's own memory sent again with the same content is left as it
    is (a retry adds nothing), with other content it is an edit (a new version in its history).
    Refused, and nothing written: the id of a memory the key deleted (409: restore it first), any
    other id used before (422, whoever used it), moving a memory to another user, namespace or
    session (422)."""
    caller = request_caller(request)
    now = time.time()
    items = [
        NewMemory(
            id=item.id,
            text=item.text,
            scope=caller.scope(
                user_id=mapping.user_or_default(item.user_id),
                namespace=item.namespace,
                session_id=item.session_id or "",
            ),
            type=item.memory_type,
            topics=item.topics or [],
            entities=item.entities or [],
            event_date=mapping.epoch(item.event_date) if item.event_date else None,
            source=item.extracted_from or [],
            created_at=mapping.not_in_future(item.created_at, now=now),
            # AMS keeps a long-term memory until it is deleted, and its client files memories as
            # `message` by default: Engram's per-type expiry (90 days for messages) would lose a
            # switching team's memories without a word. A TTL can be set through /api/v1.
            ttl_seconds=None,
        )
        for item in body.memories
    ]
    saved = save_memories(
        items=items, owner=caller.owner(), actor=caller.actor, reason="agent-memory-client create"
    )
    return {"status": mapping.saved_status(saved)}


# Before /{memory_id}: Django takes the first path that matches, and "search" would be an id.
@router.post("/v1/long-term-memory/search", response={200: MemoryRecordResultsOut, **ERRORS})
def search_long_term_memory(
    request: HttpRequest, body: SearchIn, optimize_query: bool = False
) -> dict[str, Any]:
    """Engram's hybrid search (or `search_mode`); without text, the newest memories that match the
    filters. `optimize_query` is accepted and has no effect (no query rewriting here)."""
    return mapping.search_page(body, request_caller(request))


@router.get("/v1/long-term-memory/{memory_id}", response={200: MemoryRecordOut, **ERRORS})
def get_long_term_memory(request: HttpRequest, memory_id: str) -> dict[str, Any]:
    caller = request_caller(request)
    memory = get_memory(memory_id=memory_id, owner=caller.owner(), include_deleted=False)
    return mapping.record(memory, caller)


@router.patch("/v1/long-term-memory/{memory_id}", response={200: MemoryRecordOut, **ERRORS})
def edit_long_term_memory(request: HttpRequest, memory_id: str, body: MemoryEditIn) -> dict[str, Any]:
    caller = request_caller(request)
    owner = caller.owner()
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidInput("nothing to change: send text, topics, entities, memory_type or event_date")
    before = get_memory(memory_id=memory_id, owner=owner, include_deleted=False)
    check_not_moved(before, mapping.asked_scope(before, changes, caller))
    memory = update_memory(
        memory_id=memory_id,
        owner=owner,
        actor=caller.actor,
        text=body.text if "text" in changes else None,
        type=body.memory_type if "memory_type" in changes else None,
        topics=body.topics if "topics" in changes else None,
        entities=body.entities if "entities" in changes else None,
        event_date=(
            (mapping.epoch(body.event_date) if body.event_date else None)
            if "event_date" in changes
            else UNCHANGED
        ),
        reason="agent-memory-client edit",
    )
    return mapping.record(memory, caller)


@router.delete("/v1/long-term-memory", response={200: AckOut, **ERRORS})
def delete_long_term_memories(request: HttpRequest, memory_ids: Query[list[str]]) -> dict[str, Any]:
    """All or nothing: ids the key cannot see (or that do not exist) are skipped, as AMS skips
    missing ones; if any of the others may not be deleted (pinned or locked by staff: 409),
    none is."""
    caller = request_caller(request)
    if not 1 <= len(memory_ids) <= MAX_DELETE_IDS:
        raise InvalidInput(f"send 1 to {MAX_DELETE_IDS} memory_ids")
    deleted = delete_memories(
        memory_ids=memory_ids, owner=caller.owner(), actor=caller.actor, reason="agent-memory-client delete"
    )
    return {"status": f"ok, deleted {len(deleted)} memories"}


@router.post("/v1/memory/prompt", response={200: MemoryPromptOut, **ERRORS})
def memory_prompt(request: HttpRequest, body: MemoryPromptIn, optimize_query: bool = False) -> dict[str, Any]:
    """The chat's own `build_prompt`: the session's summary and recent messages within the token
    budget, the memories that matter for `query`, then `query` itself."""
    caller = request_caller(request)
    if body.session is None and body.long_term_search is None:
        raise InvalidInput("send a session, a long_term_search, or both")
    search = body.long_term_search
    if search is not None:
        unsupported = set(search.model_dump(exclude_unset=True)) - PROMPT_SEARCH_FIELDS
        if unsupported:
            raise InvalidInput(
                f"long_term_search here takes {', '.join(sorted(PROMPT_SEARCH_FIELDS))}; "
                f"not {', '.join(sorted(unsupported))}"
            )
    named_session = body.session.session_id if body.session else ""
    session_id = caller.session_key(named_session) if named_session else ""
    asked_user = (body.session.user_id if body.session else None) or (
        mapping.filter_kwargs(search)["user_id"] if search and search.user_id else None
    )
    namespace = (body.session.namespace if body.session else None) or (
        search.namespace.eq if search and search.namespace else None
    )
    reach = caller.filter(user_id=mapping.prompt_user(caller, session_id, asked_user), namespace=namespace)
    built = prompt_in_reach(
        reach=reach,
        session_id=session_id,
        message=body.query,
        budget=body.session.budget() if body.session else None,
        top_k=search.limit if search else None,
        system_instructions=PROMPT_INSTRUCTIONS,
    )
    messages = [
        {
            "role": m["role"] if m["role"] in {"system", "user"} else "assistant",
            "content": {"type": "text", "text": m["content"]},
        }
        for m in built.messages
    ]
    return {
        "messages": messages,
        "long_term_memories": [mapping.result(h.memory, h.score, caller) for h in built.memories],
        "token_breakdown": built.token_breakdown,
    }
