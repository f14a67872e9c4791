"""/api/v1/search and /api/v1/memory-prompt: the engine's search with every score, and the prompt
the chat builds for a message (memory.prompt.build_prompt), for agents that call their own model."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from api.callers import request_caller
from api.problems import ERRORS
from api.v1.memory_schemas import MemoryPromptIn, MemoryPromptOut, SearchIn, SearchOut
from api.v1.presenters import hits_for
from memory.prompt import prompt_in_reach
from memory.search import search_memories

search_router = Router(tags=["search"])
prompt_router = Router(tags=["search"])


@search_router.post("", response={200: SearchOut, **ERRORS}, summary="Search a user's memories")
def search(request: HttpRequest, body: SearchIn) -> Any:
    """Semantic, keyword or hybrid search within the filters, each hit with its score breakdown,
    and the near misses (the best candidates below the cut)."""
    caller = request_caller(request)
    result = search_memories(
        filter=caller.filter(**body.filter_kwargs()),
        text=body.text,
        mode=body.mode,
        top_k=body.top_k,
        threshold=body.threshold,
        relative_threshold=body.relative_threshold,
        near_misses=body.near_misses,
    )
    return {
        "mode": result.mode,
        "took_ms": result.took_ms,
        "threshold": result.threshold,
        "relative_threshold": result.relative_threshold,
        "cut": result.cut,
        "hits": hits_for(caller, result.hits),
        "near_misses": hits_for(caller, result.near_misses),
    }


@prompt_router.post("", response={200: MemoryPromptOut, **ERRORS}, summary="The prompt for a message")
def memory_prompt(request: HttpRequest, body: MemoryPromptIn) -> Any:
    """The messages the chat would send its model for this message: instructions with the user's
    relevant memories, the session's summary and recent messages within the token budget, then
    the message; with the memories used, the near misses and where the tokens went. Like a chat
    turn, it counts as a use of the memories it includes (access stats) and, with a session, is
    saved as the session's retrieval trace."""
    caller = request_caller(request)
    built = prompt_in_reach(
        reach=caller.filter(user_id=body.user_id, namespace=body.namespace, agent_id=body.agent_id),
        session_id=caller.session_key(body.session_id) if body.session_id is not None else "",
        require_session=True,
        message=body.message,
        budget=body.budget,
        top_k=body.top_k,
    )
    return {
        "turn_id": built.turn_id,
        "session_id": body.session_id,
        "messages": built.messages,
        "memories": hits_for(caller, built.memories),
        "near_misses": hits_for(caller, built.near_misses),
        "profile": built.profile,
        "tokens": built.trace.tokens,
    }
