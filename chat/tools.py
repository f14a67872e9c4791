"""Tools the chat model may call: the memory tools (memory/toolkit.py, defined there once for the
chat and the MCP server) and a sample business tool (order lookup).

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

from pydantic import BaseModel

from memory import working
from memory.access import Owner
from memory.query import MemoryFilter
from memory.toolkit import (
    CHAT_TOOLS,
    Text,
    Tool,
    ToolFailure,
    argument_schema,
    parse_arguments,
)
from memory.toolkit import ToolContext as MemoryToolContext
from memory.types import Actor, ActorKind, EngineError, Scope


@dataclass(frozen=True)
class ToolContext:
    user_id: str
    session_id: str
    model: str
    agent_id: str = "engram"
    namespace: str = "default"

    def actor(self, tool: str) -> Actor:
        return Actor(ActorKind.TOOL, tool, model=self.model)

    def for_memory_tool(self, tool: str) -> MemoryToolContext:
        """The signed-in user's memories of this agent and namespace, acted on as the named tool."""
        return MemoryToolContext(
            scope=Scope(
                user_id=self.user_id,
                agent_id=self.agent_id,
                namespace=self.namespace,
                session_id=self.session_id,
            ),
            reach=MemoryFilter.build(user_id=self.user_id, agent_id=self.agent_id, namespace=self.namespace),
            owner=Owner.user(self.user_id),
            actor=self.actor(tool),
        )


@dataclass(frozen=True)
class ToolOutcome:
    result: dict[str, Any]
    cached: bool = False


def function_spec(*, name: str, description: str, arguments: type[BaseModel]) -> dict[str, Any]:
    """An OpenAI-style function tool spec."""
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": argument_schema(arguments)},
    }


def _arguments(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw or "{}")
    except ValueError as exc:
        raise ToolFailure("arguments are not valid JSON") from exc
    if not isinstance(data, dict):
        raise ToolFailure("arguments must be a JSON object")
    return data


def _memory_tool(tool: Tool[Any]) -> Callable[[ToolContext, dict[str, Any]], ToolOutcome]:
    def run(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
        return ToolOutcome(tool.call(ctx.for_memory_tool(tool.name), args))

    return run


# The sample business system behind lookup_order; tests count calls to prove the cache works.
ORDER_BACKEND_CALLS: list[str] = []


def order_backend(order_id: str) -> dict[str, Any]:
    ORDER_BACKEND_CALLS.append(order_id)
    digest = int(hashlib.sha256(order_id.encode()).hexdigest(), 16)
    statuses = ["processing", "shipped", "out for delivery", "delivered"]
    return {"order_id": order_id, "status": statuses[digest % len(statuses)], "items": 1 + digest % 3}


class OrderArgs(BaseModel):
    order_id: Text


LOOKUP_ORDER_DESCRIPTION = "Look up the status of one of the user's orders by its order id."


def _lookup_order(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    order_id = parse_arguments(OrderArgs, args).order_id[:64]
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
    **{tool.name: _memory_tool(tool) for tool in CHAT_TOOLS},
    "lookup_order": _lookup_order,
}
TOOL_SPECS: list[dict[str, Any]] = [
    *(function_spec(name=t.name, description=t.description, arguments=t.arguments) for t in CHAT_TOOLS),
    function_spec(name="lookup_order", description=LOOKUP_ORDER_DESCRIPTION, arguments=OrderArgs),
]


def run_tool(ctx: ToolContext, *, name: str, raw_arguments: str) -> ToolOutcome:
    tool = _TOOLS.get(name)
    if tool is None:
        return ToolOutcome({"error": f"unknown tool {name!r}"})
    try:
        return tool(ctx, _arguments(raw_arguments))
    except (ToolFailure, EngineError) as exc:
        return ToolOutcome({"error": str(exc)})
