"""Long-term memory as Agent Memory Server serves it: create, get, edit, delete, search, and the
memory prompt. Thin: each view maps the request onto one engine call through the caller's key."""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router

from api.callers import ApiCaller
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
from memory import working
from memory.mutation import UNCHANGED
from memory.prompt import build_prompt
from memory.search import search_memories
from memory.search_params import MAX_TOP_K
from memory.selectors import get_memory, list_memories
from memory.services import NewMemory, add_memories, delete_memory, update_memory
from memory.types import InvalidInput, MemoryNotFound

router = Router(tags=["ams long-term memory"])

MAX_DELETE_IDS = 100
# What a memory prompt's search can be narrowed by (build_prompt's own scope and size).
PROMPT_SEARCH_FIELDS = {"namespace", "user_id", "limit", "offset"}
# The chat's own instructions speak as Engram; an outside agent gets only what its memory is for.
PROMPT_INSTRUCTIONS = (
    "Use what you remember about the user when it helps, never invent memories, and say so when "
    "you do not know."
)


def _caller(request: HttpRequest) -> ApiCaller:
    caller = request.auth  # type: ignore[attr-defined]
    assert isinstance(caller, ApiCaller)
    return caller


@router.post("/v1/long-term-memory/", response={200: AckOut, **ERRORS})
def create_memories(request: HttpRequest, body: CreateMemoriesIn) -> dict[str, Any]:
    """Each record keeps the id the client gave it. Sent again with the same ids (a retry), nothing
    is added twice; an id already used otherwise is refused (422)."""
    caller = _caller(request)
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
            # Scoped by key: another key reusing an id gets "in use", never this key's memory.
            idempotency_key=f"ams-create:{caller.key_id}:{item.id}",
        )
        for item in body.memories
    ]
    added = add_memories(items=items, actor=caller.actor, reason="agent-memory-client create", publish=True)
    return {"status": f"ok, stored {len(added)} memories"}


# Before /{memory_id}: Django takes the first path that matches, and "search" would be an id.
@router.post("/v1/long-term-memory/search", response={200: MemoryRecordResultsOut, **ERRORS})
def search_long_term_memory(
    request: HttpRequest, body: SearchIn, optimize_query: bool = False
) -> dict[str, Any]:
    """Engram's hybrid search (or `search_mode`); without text, the newest memories that match the
    filters. `optimize_query` is accepted and has no effect (no query rewriting here)."""
    caller = _caller(request)
    filter_ = caller.filter(**mapping.filter_kwargs(body))
    wanted = body.offset + body.limit
    if not body.text.strip():
        page = list_memories(filter=filter_, offset=body.offset, limit=body.limit)
        found = [mapping.result(m, None, caller) for m in page.memories]
        more = body.offset + len(found) < page.total
        return {"memories": found, "total": page.total, "next_offset": wanted if more else None}
    if wanted > MAX_TOP_K:
        raise InvalidInput(f"offset + limit may be at most {MAX_TOP_K}")
    searched = search_memories(
        filter=filter_,
        text=body.text,
        mode=body.search_mode or "hybrid",
        top_k=wanted,
        threshold=mapping.threshold(body.distance_threshold),
    )
    hits = searched.hits[body.offset : wanted]
    return {
        "memories": [mapping.result(h.memory, h.score, caller) for h in hits],
        "total": len(searched.hits),
        # A full page may have more behind it; a short one has not.
        "next_offset": wanted if len(searched.hits) == wanted else None,
    }


@router.get("/v1/long-term-memory/{memory_id}", response={200: MemoryRecordOut, **ERRORS})
def get_long_term_memory(request: HttpRequest, memory_id: str) -> dict[str, Any]:
    caller = _caller(request)
    memory = get_memory(memory_id=memory_id, owner=caller.owner(), include_deleted=False)
    return mapping.record(memory, caller)


@router.patch("/v1/long-term-memory/{memory_id}", response={200: MemoryRecordOut, **ERRORS})
def edit_long_term_memory(request: HttpRequest, memory_id: str, body: MemoryEditIn) -> dict[str, Any]:
    caller = _caller(request)
    owner = caller.owner()
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidInput("nothing to change: send text, topics, entities, memory_type or event_date")
    before = get_memory(memory_id=memory_id, owner=owner, include_deleted=False)
    moved = {
        "user_id": before.scope.user_id,
        "namespace": before.scope.namespace,
        "session_id": mapping.session_of(before, caller),
    }
    for name, current in moved.items():
        if name in changes and changes[name] != current:
            raise InvalidInput(f"{name} cannot be changed; create the memory again where it belongs")
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
    """Ids the key cannot see (or that do not exist) are skipped, as AMS skips missing ones."""
    caller = _caller(request)
    if not 1 <= len(memory_ids) <= MAX_DELETE_IDS:
        raise InvalidInput(f"send 1 to {MAX_DELETE_IDS} memory_ids")
    owner = caller.owner()
    deleted = 0
    for memory_id in dict.fromkeys(memory_ids):
        try:
            delete_memory(
                memory_id=memory_id, owner=owner, actor=caller.actor, reason="agent-memory-client delete"
            )
        except MemoryNotFound:
            continue
        deleted += 1
    return {"status": f"ok, deleted {deleted} memories"}


@router.post("/v1/memory/prompt", response={200: MemoryPromptOut, **ERRORS})
def memory_prompt(request: HttpRequest, body: MemoryPromptIn, optimize_query: bool = False) -> dict[str, Any]:
    """The chat's own `build_prompt`: the session's summary and recent messages within the token
    budget, the memories that matter for `query`, then `query` itself."""
    caller = _caller(request)
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
    session_id = body.session.session_id if body.session else ""
    asked_user = (body.session.user_id if body.session else None) or (
        mapping.filter_kwargs(search)["user_id"] if search and search.user_id else None
    )
    session = working.get_session(session_id=caller.session_key(session_id)) if session_id else None
    if session is not None:
        session = caller.require_session(session, user_id=asked_user)
    user_id = session.user_id if session else mapping.user_or_default(asked_user)
    namespace = (body.session.namespace if body.session else None) or (
        search.namespace.eq if search and search.namespace else None
    )
    # What the prompt may draw on is what a search by this caller would find.
    reach = caller.filter(user_id=user_id, namespace=namespace)
    built = build_prompt(
        user_id=reach.user_id,
        session_id=caller.session_key(session_id) if session_id else "",
        message=body.query,
        agent_id=reach.agent_id,
        namespace=reach.namespace,
        namespaces=reach.namespaces,
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
