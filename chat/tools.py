"""Tools the chat model may call: memory tools and a sample business tool (order lookup).

Arguments come from the model, so each tool validates them and answers with a small JSON result;
a bad call gets an error result the model can read, never an exception in the turn. What the model
may change is memory.policy's decision: a memory staff pinned or locked is answered with
`not_changed` and the reason, and stays as it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from core.embeddings import get_embedder
from core.llm import LLMError, get_llm
from memory import working
from memory.access import Owner
from memory.extraction.decide import decide
from memory.extraction.llm_extractor import ExtractionError
from memory.extraction.types import Candidate
from memory.hits import hit_as_dict
from memory.policy import Change, may_change
from memory.query import MemoryFilter
from memory.records import content_hash
from memory.search import search_memories
from memory.selectors import find_similar, get_memory
from memory.services import add_memory, delete_memory, record_refused_change
from memory.types import (
    Actor,
    ActorKind,
    EngineError,
    Memory,
    MemoryLocked,
    MemoryNotFound,
    MemoryType,
    Scope,
)

TOOL_SPECS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "search_memory",
            "description": "Search what you remember about the user.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 20},
                },
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "remember",
            "description": "Store a fact, preference or instruction about the user for later conversations.",
            "parameters": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "description": "One short sentence, third person."},
                    "type": {"type": "string", "enum": ["semantic", "episodic", "procedural"]},
                },
                "required": ["text"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "forget",
            "description": "Delete a memory the user wants forgotten, by its id from search_memory.",
            "parameters": {
                "type": "object",
                "properties": {"memory_id": {"type": "string"}},
                "required": ["memory_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Look up the status of one of the user's orders by its order id.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    },
]


@dataclass(frozen=True)
class ToolContext:
    user_id: str
    session_id: str
    model: str
    agent_id: str = "engram"
    namespace: str = "default"

    def actor(self, tool: str) -> Actor:
        return Actor(ActorKind.TOOL, tool, model=self.model)


@dataclass(frozen=True)
class ToolOutcome:
    result: dict[str, Any]
    cached: bool = False


class ToolArgumentError(ValueError):
    pass


def _arguments(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw or "{}")
    except ValueError as exc:
        raise ToolArgumentError("arguments are not valid JSON") from exc
    if not isinstance(data, dict):
        raise ToolArgumentError("arguments must be a JSON object")
    return data


def _string(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ToolArgumentError(f"'{name}' must be a non-empty string")
    return value.strip()


def _search_memory(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    limit = args.get("limit", 5)
    if not isinstance(limit, int) or not 1 <= limit <= 20:
        limit = 5
    result = search_memories(
        filter=MemoryFilter.build(user_id=ctx.user_id, agent_id=ctx.agent_id, namespace=ctx.namespace),
        text=_string(args, "query"),
        top_k=limit,
    )
    return ToolOutcome({"memories": [hit_as_dict(h, view="tool") for h in result.hits]})


def _not_changed(memory: Memory, reason: str) -> ToolOutcome:
    return ToolOutcome({"not_changed": {"id": memory.id, "text": memory.text, "reason": reason}})


_FACT_TYPES = [t for t in MemoryType if t != MemoryType.MESSAGE]


def _remember(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    memory_type = args.get("type") or "semantic"
    if memory_type not in {t.value for t in MemoryType} - {"message"}:
        raise ToolArgumentError("'type' must be semantic, episodic or procedural")
    text = _string(args, "text")
    actor = ctx.actor("remember")
    vector = get_embedder().embed([text])[0]
    nearest = find_similar(
        filter=MemoryFilter.build(
            user_id=ctx.user_id, agent_id=ctx.agent_id, namespace=ctx.namespace, types=_FACT_TYPES
        ),
        vector=vector,
        max_distance=settings.SEMANTIC_DEDUP_DISTANCE,
        limit=3,
    )
    for memory, _distance in nearest:
        if memory.content_hash == content_hash(text):
            return ToolOutcome({"already_known": {"id": memory.id, "text": memory.text}})
        # A rewording of a pinned or locked memory would stand beside it in every prompt and
        # overrule it: the same as changing it, which the policy does not let the model do.
        decision = may_change(actor=actor, memory=memory, change=Change.UPDATE)
        if not decision.allowed:
            return _not_changed(memory, decision.reason)
    scope = Scope(
        user_id=ctx.user_id, agent_id=ctx.agent_id, namespace=ctx.namespace, session_id=ctx.session_id
    )
    refused = _contradicts_protected(text, memory_type, scope=scope, actor=actor)
    if refused is not None:
        return refused
    memory = add_memory(
        text=text,
        scope=scope,
        actor=actor,
        type=memory_type,
        reason="the assistant was asked to remember this",
        embedding=vector,
    )
    return ToolOutcome({"remembered": {"id": memory.id, "text": memory.text}})


def _contradicts_protected(text: str, memory_type: str, *, scope: Scope, actor: Actor) -> ToolOutcome | None:
    """Would this fact change a locked or pinned memory ("lives in Berlin" against a locked "lives
    in Porto")? Judged as the extractor judges a new fact (decide, with the model), so both paths
    refuse the same change; the refusal goes into that memory's history. None: nothing refused."""
    llm = get_llm()
    if llm.mode == "offline":
        return None
    candidate = Candidate(text=text, type=MemoryType(memory_type))
    try:
        ops = decide([candidate], scope=scope, llm=llm)
    except (ExtractionError, LLMError):  # no judgement to be had: keep the fact, as before
        return None
    for op in ops:
        if op.refused:
            target = get_memory(memory_id=op.target_id, owner=Owner.user(scope.user_id))
            record_refused_change(
                memory_id=target.id,
                owner=Owner.user(scope.user_id),
                actor=actor,
                action=op.refused,
                proposed_text=op.text or text,
                reason=op.reason,
            )
            return _not_changed(target, op.reason)
    return None


def _forget(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    memory_id = _string(args, "memory_id")
    # Only the user's own memories: another user's id is "not found", never a hint that it exists.
    owner = Owner.user(ctx.user_id)
    try:
        memory = get_memory(memory_id=memory_id, owner=owner, include_deleted=False)
    except MemoryNotFound:
        return ToolOutcome({"error": "no such memory"})
    try:
        delete_memory(
            memory_id=memory_id,
            owner=owner,
            actor=ctx.actor("forget"),
            reason="the user asked to forget this",
        )
    except MemoryLocked as exc:  # the policy's answer, asked on the memory as it is at the write
        return _not_changed(memory, str(exc))
    return ToolOutcome({"forgotten": {"id": memory_id, "text": memory.text}})


# The sample business system behind lookup_order; tests count calls to prove the cache works.
ORDER_BACKEND_CALLS: list[str] = []


def order_backend(order_id: str) -> dict[str, Any]:
    ORDER_BACKEND_CALLS.append(order_id)
    digest = int(hashlib.sha256(order_id.encode()).hexdigest(), 16)
    statuses = ["processing", "shipped", "out for delivery", "delivered"]
    return {"order_id": order_id, "status": statuses[digest % len(statuses)], "items": 1 + digest % 3}


def _lookup_order(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    order_id = _string(args, "order_id")[:64]
    arguments = {"order_id": order_id}
    cached = working.get_cached_tool_result(
        session_id=ctx.session_id, tool="lookup_order", arguments=arguments
    )
    if cached is not working.CACHE_MISS:
        return ToolOutcome(cached, cached=True)
    result = order_backend(order_id)
    working.cache_tool_result(
        session_id=ctx.session_id, tool="lookup_order", arguments=arguments, result=result
    )
    return ToolOutcome(result)


_TOOLS: dict[str, Callable[[ToolContext, dict[str, Any]], ToolOutcome]] = {
    "search_memory": _search_memory,
    "remember": _remember,
    "forget": _forget,
    "lookup_order": _lookup_order,
}


def run_tool(ctx: ToolContext, *, name: str, raw_arguments: str) -> ToolOutcome:
    tool = _TOOLS.get(name)
    if tool is None:
        return ToolOutcome({"error": f"unknown tool {name!r}"})
    try:
        return tool(ctx, _arguments(raw_arguments))
    except (ToolArgumentError, EngineError) as exc:
        return ToolOutcome({"error": str(exc)})
