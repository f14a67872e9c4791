"""The memory tools, each defined once: name, description, argument model and what it does.

The chat model's tools (chat/tools.py) and the MCP server's (api/mcp/) are generated from these
definitions: the JSON schema a model or an MCP client sees is the argument model's, and both run
the same function. Only the context differs: whose memories a call may reach (an `Owner`, a
`MemoryFilter` for searches, a `Scope` for new memories) and who acts (the chat's tool actor, an
API key's actor). A refused call raises `ToolFailure` with words the caller can read; each front
turns it into its own error result, never an exception in a turn or a crashed server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

from django.conf import settings
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from core.embeddings import get_embedder
from core.llm import LLMError, get_llm
from memory import working
from memory.access import Owner
from memory.extraction.decide import decide
from memory.extraction.llm_extractor import ExtractionError
from memory.extraction.types import Candidate
from memory.hits import hit_as_dict
from memory.policy import Change, may_change
from memory.prompt import prompt_in_reach, session_in_reach
from memory.query import MemoryFilter
from memory.records import content_hash
from memory.search import search_memories
from memory.selectors import find_similar, get_memory
from memory.services import add_memory, delete_memory, record_refused_change
from memory.types import (
    Actor,
    EngineError,
    Memory,
    MemoryLocked,
    MemoryNotFound,
    MemoryType,
    Scope,
)


@dataclass(frozen=True)
class ToolContext:
    """What one tool call may reach and who makes it."""

    scope: Scope  # a new memory's user, agent, namespace and session; the session tools' session
    reach: MemoryFilter  # what a search covers: the same user, as confined as `owner`
    owner: Owner  # which memories the call may name by id
    actor: Actor


class ToolFailure(Exception):
    """A call the tool refuses (bad arguments, an engine error); the message is safe to show."""


# --- Argument types: the JSON schema comes from these, and so do the error words -----------------


def _non_empty(value: str) -> str:
    value = value.strip()
    if not value:
        raise PydanticCustomError("empty", "must be a non-empty string")
    return value


Text = Annotated[str, AfterValidator(_non_empty)]


def _search_limit(value: Any, handler: ValidatorFunctionWrapHandler) -> int:
    # A model asking for a silly number of results still gets an answer: the default count.
    try:
        return int(handler(value))
    except ValidationError:
        return DEFAULT_SEARCH_LIMIT


DEFAULT_SEARCH_LIMIT = 5
SearchLimit = Annotated[int, Field(ge=1, le=20), WrapValidator(_search_limit)]
FactType = Annotated[
    Literal["semantic", "episodic", "procedural"],
    # An empty or null type is the default kind, as the chat always read it.
    BeforeValidator(lambda value: value or "semantic"),
]


class SearchArgs(BaseModel):
    query: Text
    limit: SearchLimit = DEFAULT_SEARCH_LIMIT


class RememberArgs(BaseModel):
    text: Annotated[Text, Field(description="One short sentence, third person.")]
    type: FactType = "semantic"


class ForgetArgs(BaseModel):
    memory_id: Text


class PromptArgs(BaseModel):
    message: Annotated[Text, Field(description="The user's new message.")]


class ReadSessionArgs(BaseModel):
    last: Annotated[
        int | None, Field(ge=1, le=1000, description="Only the newest messages; all when left out.")
    ] = None


class MessageArgs(BaseModel):
    role: Literal["user", "assistant", "system", "tool"]
    content: str


class WriteSessionArgs(BaseModel):
    messages: Annotated[list[MessageArgs], Field(min_length=1, max_length=100)]


A = TypeVar("A", bound=BaseModel)


@dataclass(frozen=True)
class Tool(Generic[A]):
    name: str
    description: str
    arguments: type[A]
    run: Callable[[ToolContext, A], dict[str, Any]]
    # The session tools act on the context's session: a front must give one.
    needs_session: bool = False

    def parse(self, raw: Mapping[str, Any]) -> A:
        return parse_arguments(self.arguments, raw)

    def call(self, ctx: ToolContext, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the raw arguments and run; ToolFailure for anything refused."""
        return self.execute(ctx, self.parse(raw))

    def execute(self, ctx: ToolContext, args: A) -> dict[str, Any]:
        """Run on arguments already validated; ToolFailure for anything refused."""
        if self.needs_session and not ctx.scope.session_id:
            raise ToolFailure("a session id is needed")
        try:
            return self.run(ctx, args)
        except EngineError as exc:
            raise ToolFailure(str(exc)) from exc


def parse_arguments(model: type[A], raw: Mapping[str, Any]) -> A:
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        raise ToolFailure(describe_errors(exc)) from exc


def describe_errors(exc: ValidationError) -> str:
    """pydantic's errors in a line a model or a person can act on: "'query' is required"."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        if error["type"] == "missing":
            parts.append(f"'{where}' is required")
        else:
            message = str(error["msg"]).removeprefix("Input ")  # "'limit' should be a valid integer"
            parts.append(f"'{where}' {message[:1].lower()}{message[1:]}")
    return "; ".join(parts)


def argument_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of an argument model without pydantic's titles (words a model pays for)."""
    return _without_titles(model.model_json_schema())


def _without_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _without_titles(value)
            for key, value in node.items()
            # "title" as a key of "properties" is a field's name, not pydantic's label.
            if not (key == "title" and isinstance(value, str))
        }
    if isinstance(node, list):
        return [_without_titles(item) for item in node]
    return node


# --- The tools ----------------------------------------------------------------------------------


def _search_memory(ctx: ToolContext, args: SearchArgs) -> dict[str, Any]:
    result = search_memories(filter=ctx.reach, text=args.query, top_k=args.limit)
    return {"memories": [hit_as_dict(h, view="tool") for h in result.hits]}


def _not_changed(memory: Memory, reason: str) -> dict[str, Any]:
    return {"not_changed": {"id": memory.id, "text": memory.text, "reason": reason}}


_FACT_TYPES = [t for t in MemoryType if t != MemoryType.MESSAGE]


def _remember(ctx: ToolContext, args: RememberArgs) -> dict[str, Any]:
    scope = ctx.scope
    vector = get_embedder().embed([args.text])[0]
    nearest = find_similar(
        filter=MemoryFilter.build(
            user_id=scope.user_id, agent_id=scope.agent_id, namespace=scope.namespace, types=_FACT_TYPES
        ),
        vector=vector,
        max_distance=settings.SEMANTIC_DEDUP_DISTANCE,
        limit=3,
    )
    for memory, _distance in nearest:
        if memory.content_hash == content_hash(args.text):
            return {"already_known": {"id": memory.id, "text": memory.text}}
        # A rewording of a pinned or locked memory would stand beside it in every prompt and
        # overrule it: the same as changing it, which the policy does not let the model do.
        decision = may_change(actor=ctx.actor, memory=memory, change=Change.UPDATE)
        if not decision.allowed:
            return _not_changed(memory, decision.reason)
    refused = _contradicts_protected(ctx, args.text, args.type)
    if refused is not None:
        return refused
    memory = add_memory(
        text=args.text,
        scope=scope,
        actor=ctx.actor,
        type=args.type,
        reason="the assistant was asked to remember this",
        embedding=vector,
    )
    return {"remembered": {"id": memory.id, "text": memory.text}}


def _contradicts_protected(ctx: ToolContext, text: str, memory_type: str) -> dict[str, Any] | None:
    """Would this fact change a locked or pinned memory ("lives in Berlin" against a locked "lives
    in Porto")? Judged as the extractor judges a new fact (decide, with the model), so both paths
    refuse the same change; the refusal goes into that memory's history. None: nothing refused."""
    llm = get_llm()
    if llm.mode == "offline":
        return None
    candidate = Candidate(text=text, type=MemoryType(memory_type))
    try:
        ops = decide([candidate], scope=ctx.scope, llm=llm)
    except (ExtractionError, LLMError):  # no judgement to be had: keep the fact, as before
        return None
    for op in ops:
        if op.refused:
            target = get_memory(memory_id=op.target_id, owner=ctx.owner)
            record_refused_change(
                memory_id=target.id,
                owner=ctx.owner,
                actor=ctx.actor,
                action=op.refused,
                proposed_text=op.text or text,
                reason=op.reason,
            )
            return _not_changed(target, op.reason)
    return None


def _forget(ctx: ToolContext, args: ForgetArgs) -> dict[str, Any]:
    # Only the caller's own memories: another's id is "not found", never a hint that it exists.
    try:
        memory = get_memory(memory_id=args.memory_id, owner=ctx.owner, include_deleted=False)
    except MemoryNotFound as exc:
        raise ToolFailure("no such memory") from exc
    try:
        delete_memory(
            memory_id=memory.id, owner=ctx.owner, actor=ctx.actor, reason="the user asked to forget this"
        )
    except MemoryLocked as exc:  # the policy's answer, asked on the memory as it is at the write
        return _not_changed(memory, str(exc))
    return {"forgotten": {"id": memory.id, "text": memory.text}}


def _own_session(ctx: ToolContext) -> working.Session | None:
    """The context's session when it is the caller's; None when it does not exist. Another user's
    or another agent's session is "not found", like a missing one."""
    return session_in_reach(session_id=ctx.scope.session_id, reach=ctx.reach)


def _prompt_context(ctx: ToolContext, args: PromptArgs) -> dict[str, Any]:
    # What the caller's search would find (ctx.reach), with its session when it has one.
    built = prompt_in_reach(reach=ctx.reach, session_id=ctx.scope.session_id, message=args.message)
    return {
        "messages": built.messages,
        "memories": [hit_as_dict(h, view="tool") for h in built.memories],
        "tokens": built.token_breakdown,
    }


def _message_dict(message: working.WorkingMessage) -> dict[str, Any]:
    return {"id": message.id, "role": message.role, "content": message.content, "at": message.at}


def _read_session(ctx: ToolContext, args: ReadSessionArgs) -> dict[str, Any]:
    session = _own_session(ctx)
    if session is None:
        raise ToolFailure("no such session")
    messages = working.get_messages(session_id=session.id, last=args.last)
    return {
        "summary": session.summary,
        "message_count": session.message_count,
        "messages": [_message_dict(m) for m in messages],
    }


def _write_session(ctx: ToolContext, args: WriteSessionArgs) -> dict[str, Any]:
    scope = ctx.scope
    # Every message is checked before anything is written: a batch is added whole or not at all.
    added = [working.new_message(role=m.role, content=m.content) for m in args.messages]
    if _own_session(ctx) is None:
        working.ensure_session(session_id=scope.session_id, user_id=scope.user_id, agent_id=scope.agent_id)
    working.append_messages(session_id=scope.session_id, messages=added)
    return {"added": [_message_dict(m) for m in added]}


SEARCH_MEMORY = Tool(
    name="search_memory",
    description="Search what you remember about the user.",
    arguments=SearchArgs,
    run=_search_memory,
)
REMEMBER = Tool(
    name="remember",
    description="Store a fact, preference or instruction about the user for later conversations.",
    arguments=RememberArgs,
    run=_remember,
)
FORGET = Tool(
    name="forget",
    description="Delete a memory the user wants forgotten, by its id from search_memory.",
    arguments=ForgetArgs,
    run=_forget,
)
PROMPT_CONTEXT = Tool(
    name="memory_prompt",
    description=(
        "The messages to send a model for the user's new message: system instructions with the "
        "relevant memories, the conversation so far (with a session) and the message; with the "
        "memories used and a token breakdown."
    ),
    arguments=PromptArgs,
    run=_prompt_context,
)
READ_WORKING_MEMORY = Tool(
    name="read_working_memory",
    description="Read a conversation's working memory: its messages, oldest first, and its summary.",
    arguments=ReadSessionArgs,
    run=_read_session,
    needs_session=True,
)
WRITE_WORKING_MEMORY = Tool(
    name="write_working_memory",
    description="Add messages to a conversation's working memory (the session is started if needed).",
    arguments=WriteSessionArgs,
    run=_write_session,
    needs_session=True,
)

# What the chat model may call (with its own business tool beside them), and what the MCP server offers.
CHAT_TOOLS: tuple[Tool[Any], ...] = (SEARCH_MEMORY, REMEMBER, FORGET)
SERVICE_TOOLS: tuple[Tool[Any], ...] = (
    SEARCH_MEMORY,
    REMEMBER,
    FORGET,
    PROMPT_CONTEXT,
    READ_WORKING_MEMORY,
    WRITE_WORKING_MEMORY,
)
