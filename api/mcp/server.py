"""The MCP server: memory/toolkit.py's service tools, confined by the caller's API key.

Each tool's arguments are the toolkit's plus where to act: `user_id` (whose memories: every
memory in Engram belongs to one user), `namespace` and `session_id`. The key decides the rest: an
app key acts only on its agent and its namespaces, and its session ids are its own (two apps may use
the same one); a staff key acts on any agent. Both transports (stdio, streamable HTTP) use this
server; they differ in how they find the caller (`CallerOf`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from pydantic import BaseModel, Field, create_model

from api.auth import caller_for_key
from api.callers import ApiCaller
from api.problems import Forbidden
from core.outage import REDIS_DOWN, UNAVAILABLE_MESSAGE, OutageLog
from memory.toolkit import SERVICE_TOOLS, Text, ToolContext, ToolFailure, argument_schema
from memory.toolkit import Tool as MemoryTool
from memory.types import EngineError

# The caller of one tool call; raises ToolError when there is none any more (a revoked key, its
# rate limit reached).
logger = logging.getLogger(__name__)
_outage = OutageLog(logger, "MCP tool calls")
CallerOf = Callable[[Context[Any, Any]], Awaitable[ApiCaller]]
INSTRUCTIONS = (
    "Engram's long-term and working memory. Every call names the user it is about (`user_id`, "
    "your app's id for them). Search before answering, remember lasting facts, forget on request; "
    "memory_prompt gives the messages for a model with the relevant memories already in."
)
UserId = Annotated[Text, Field(description="Whose memories: your app's id for the user.")]
Namespace = Annotated[str | None, Field(description="One of your key's namespaces; its first when left out.")]


async def checked_caller(raw_key: str) -> ApiCaller | None:
    """`caller_for_key` from async code (both MCP transports). Django's request cycle closes stale
    database connections before and after each request; the MCP paths bypass it, so they do the same
    around the key's lookup and `last_used_at` write (channels' database_sync_to_async), or a
    connection the database dropped would fail every later call of the process."""
    caller: ApiCaller | None = await database_sync_to_async(caller_for_key)(raw_key)
    return caller


class WhereArgs(BaseModel):
    user_id: UserId
    namespace: Namespace = None
    session_id: Annotated[str | None, Field(description="The conversation, when there is one.")] = None


class SessionWhereArgs(BaseModel):
    user_id: UserId
    namespace: Namespace = None
    session_id: Annotated[Text, Field(description="The conversation's id.")]


def tool_context(caller: ApiCaller, where: WhereArgs | SessionWhereArgs) -> ToolContext:
    """Where a call acts, confined to the caller's key (a namespace it may not use is Forbidden).
    A search reads all the key's namespaces unless one is named; a new memory goes to the named
    one or the key's first."""
    return ToolContext(
        scope=caller.scope(
            user_id=where.user_id, namespace=where.namespace, session_id=where.session_id or ""
        ),
        reach=caller.filter(user_id=where.user_id, namespace=where.namespace),
        owner=caller.owner(where.user_id),
        actor=caller.actor,
    )


def _mcp_tool(tool: MemoryTool[Any], caller_of: CallerOf) -> Tool:
    where_model = SessionWhereArgs if tool.needs_session else WhereArgs
    model = create_model(f"{tool.name}_arguments", __base__=(ArgModelBase, where_model, tool.arguments))

    def run(caller: ApiCaller, arguments: dict[str, Any]) -> dict[str, Any]:
        where = where_model.model_construct(**{k: arguments[k] for k in where_model.model_fields})
        args = tool.arguments.model_construct(**{k: arguments[k] for k in tool.arguments.model_fields})
        try:
            return tool.execute(tool_context(caller, where), args)
        except (Forbidden, EngineError) as exc:
            raise ToolFailure(str(exc)) from exc

    async def call(ctx: Context[Any, Any], **arguments: Any) -> dict[str, Any]:
        try:
            caller = await caller_of(ctx)
            # The engine is synchronous (Redis, the embedder): off the event loop.
            result = await sync_to_async(run, thread_sensitive=False)(caller, arguments)
        except ToolFailure as exc:
            raise ToolError(str(exc)) from exc
        except REDIS_DOWN as exc:
            _outage.failed(exc)
            raise ToolError(UNAVAILABLE_MESSAGE) from exc
        _outage.ok()
        return result

    return Tool(
        fn=call,
        name=tool.name,
        title=None,
        description=tool.description,
        annotations=None,
        parameters=argument_schema(model),
        fn_metadata=FuncMetadata(arg_model=model, output_model=dict[str, Any]),
        is_async=True,
        context_kwarg="ctx",
    )


def build_server(*, caller_of: CallerOf) -> MCPServer[Any]:
    return MCPServer(
        name="engram",
        instructions=INSTRUCTIONS,
        tools=[_mcp_tool(tool, caller_of) for tool in SERVICE_TOOLS],
    )
