"""The shapes of /api/v1/memories, /search and /memory-prompt.

The records the engine returns (a memory, a history event, a score breakdown, a prompt's token
counts) are published as they are defined: each response schema is generated from its engine
dataclass (`record_schema`), so a field added to `memory.types.Memory` appears in the API and its
OpenAPI document without a second list to keep in step. Only the request bodies are written out
here: they say what a caller may send, which is not the record (no ids, versions or counters).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from functools import cache
from typing import Annotated, Any, Literal, Union

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from api.strict import StrictSchema
from memory.query import MAX_FILTER_VALUES, MAX_ID_LENGTH, MAX_TAG_LENGTH, MemoryFilter
from memory.scoring import SearchMode
from memory.search_params import MAX_TOP_K
from memory.selectors import MAX_HISTORY_PAGE
from memory.traces import TraceTokens
from memory.types import HistoryEvent, HitReason, Memory, MemoryType, ScoreBreakdown

# --- Response records, generated from the engine's dataclasses -----------------------------------


def _published(annotation: Any) -> Any:
    """A field's type as the API publishes it: engine dataclasses inside become their schemas."""
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return record_schema(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return Union[tuple(_published(a) for a in args)]  # noqa: UP007 - built from a tuple
    if origin is list:
        return list[_published(args[0])]  # type: ignore[misc]
    return annotation


@cache
def record_schema(record: type) -> type[BaseModel]:
    """The response schema of an engine dataclass: the same name and fields, every one present in
    a response (so a client, and Schemathesis, may rely on each key)."""
    hints = typing.get_type_hints(record)
    fields: dict[str, Any] = {f.name: (_published(hints[f.name]), ...) for f in dataclasses.fields(record)}
    doc = record.__doc__ or ""
    # A dataclass without a docstring gets its signature as one: that is no description.
    written = doc if not doc.startswith(f"{record.__name__}(") else ""
    return create_model(
        record.__name__,
        __config__=ConfigDict(from_attributes=True),
        __doc__=inspect.cleandoc(written) or None,
        **fields,
    )


MemoryOut = record_schema(Memory)
HistoryEventOut = record_schema(HistoryEvent)
ScoresOut = record_schema(ScoreBreakdown)
PromptTokensOut = record_schema(TraceTokens)


class MemoriesOut(BaseModel):
    memories: list[MemoryOut]  # type: ignore[valid-type]


class HistoryOut(BaseModel):
    memory_id: str
    events: list[HistoryEventOut]  # type: ignore[valid-type]
    next: str | None = Field(
        description="Cursor of the next page (pass it as `cursor`); null on the last page"
    )


class TtlOut(BaseModel):
    memory_id: str
    ttl_seconds: int | None = Field(description="Seconds left; null when the memory never expires")
    version: int | None = Field(description="The memory's version after a change; null on a read")


class HitOut(BaseModel):
    """A memory found by a search or used in a prompt, with every score that ranked it
    (`memory.hits.hit_as_dict`, staff view) and the memory itself."""

    id: str
    text: str
    type: MemoryType
    reason: HitReason
    scores: ScoresOut  # type: ignore[valid-type]
    ranked_by: Literal["score", "profile", "pinned"]
    rank: float | None
    why: str
    memory: MemoryOut  # type: ignore[valid-type]


class SearchOut(BaseModel):
    mode: SearchMode
    took_ms: float
    threshold: float = Field(description="The absolute floor a hit's final score must reach")
    relative_threshold: float = Field(description="Share of the best final score a hit must reach")
    cut: float = Field(description="max(threshold, relative_threshold x best): the score hits reach")
    hits: list[HitOut]
    near_misses: list[HitOut] = Field(description="The best candidates below the cut")


class PromptMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class MemoryPromptOut(BaseModel):
    turn_id: str
    session_id: str | None
    messages: list[PromptMessage] = Field(description="The messages to send to the model, in order")
    memories: list[HitOut] = Field(description="The memories the prompt uses, as ranked")
    near_misses: list[HitOut]
    profile: bool = Field(description="The message asked for the user's profile (ranked by importance)")
    tokens: PromptTokensOut  # type: ignore[valid-type]


# --- Request bodies --------------------------------------------------------------------------------

ScopeId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Tag = Annotated[str, Field(max_length=MAX_TAG_LENGTH)]
Tags = Annotated[list[Tag], Field(max_length=MAX_FILTER_VALUES)]
# Epoch seconds between the years 1 and 9999: what every date in the engine can be spoken as.
Epoch = Annotated[float, Field(ge=-62_135_596_800, le=253_402_300_799, allow_inf_nan=False)]
# Redis keeps expiry times in milliseconds; a century is well inside that and any real retention.
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600
Seconds = Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS)]
Reason = Annotated[str, Field(max_length=500, description="Why, for the memory's history")]
# Its length is the engine's to judge (settings.MEMORY_MAX_TEXT_CHARS), before anything is embedded.
Text = Annotated[str, Field(min_length=1)]

# Bodies are strict (api.strict) and closed: an unknown field is a mistake to report, not to drop.
_CLOSED = ConfigDict(extra="forbid")
# A memory type arrives as its name; strict mode would only take the Python enum.
TypeName = Annotated[MemoryType, Field(strict=False)]


class NewMemoryIn(StrictSchema):
    model_config = _CLOSED

    text: Text
    user_id: ScopeId
    type: TypeName = MemoryType.SEMANTIC
    namespace: ScopeId | None = Field(
        None, description="Default: the key's first namespace (app keys), else 'default'"
    )
    agent_id: ScopeId | None = Field(
        None, description="Default: the key's agent (an app key may name only its own)"
    )
    session_id: Annotated[str, Field(max_length=MAX_ID_LENGTH)] = ""
    topics: Tags = []
    entities: Tags = []
    event_date: Epoch | None = None
    source: Annotated[list[Annotated[str, Field(max_length=MAX_ID_LENGTH)]], Field(max_length=50)] = []
    ttl_seconds: Seconds | None = Field(
        None, description="Seconds to keep it; null: never expires; left out: the type's default lifetime"
    )


MAX_BATCH = 100


class CreateMemoriesIn(StrictSchema):
    model_config = _CLOSED

    memories: Annotated[list[NewMemoryIn], Field(min_length=1, max_length=MAX_BATCH)]
    reason: Reason = ""


class MemoryPatchIn(StrictSchema):
    """Only the fields sent change; `event_date: null` removes the event date."""

    model_config = _CLOSED

    text: Text | None = None
    type: TypeName | None = None
    topics: Tags | None = None
    entities: Tags | None = None
    event_date: Epoch | None = None
    reason: Reason = ""

    @model_validator(mode="after")
    def _changes_something(self) -> MemoryPatchIn:
        sent = {name for name in self.model_fields_set if getattr(self, name) is not None}
        if not sent & {"text", "type", "topics", "entities"} and "event_date" not in self.model_fields_set:
            raise ValueError("nothing to change: send text, type, topics, entities or event_date")
        return self


class ReasonIn(StrictSchema):
    model_config = _CLOSED

    reason: Reason = ""


class PinIn(ReasonIn):
    pinned: bool


class LockIn(ReasonIn):
    locked: bool


class TtlIn(ReasonIn):
    ttl_seconds: Seconds | None = Field(description="Seconds from now; null: keep the memory forever")


class ExtendTtlIn(ReasonIn):
    seconds: Seconds


class FilterIn(StrictSchema):
    """Every filter of `memory.query.MemoryFilter.build`; times are epoch seconds."""

    model_config = _CLOSED

    user_id: ScopeId
    agent_id: ScopeId | None = Field(None, description="Only this agent's (an app key: always its own)")
    namespace: ScopeId | None = None
    namespaces: Annotated[list[ScopeId], Field(max_length=MAX_FILTER_VALUES)] | None = Field(
        None, description="Any of these namespaces (an app key: of its own; default all of them)"
    )
    session_id: ScopeId | None = None
    types: Annotated[list[TypeName], Field(max_length=len(MemoryType))] | None = None
    topics: Tags | None = None
    entities: Tags | None = None
    created_after: Epoch | None = None
    created_before: Epoch | None = None
    updated_after: Epoch | None = None
    updated_before: Epoch | None = None
    event_after: Epoch | None = None
    event_before: Epoch | None = None
    pinned_only: bool = False
    without_messages_of_session: ScopeId | None = Field(
        None, description="Leave out the raw chat messages of this session"
    )

    def filter_kwargs(self) -> dict[str, Any]:
        """The `MemoryFilter.build` keyword arguments this body sets."""
        return {name: getattr(self, name) for name in FILTER_ARGUMENTS}


# The API takes every filter the engine does (`ApiCaller.filter` confines them to the key).
FILTER_ARGUMENTS = tuple(inspect.signature(MemoryFilter.build).parameters)


# What the chat takes as one message: the longest search text and prompt message.
Message = Annotated[str, Field(min_length=1, max_length=settings.MESSAGE_MAX_CHARS)]


class SearchIn(FilterIn):
    text: Message
    mode: SearchMode = "hybrid"
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K)] | None = None
    threshold: Annotated[float, Field(ge=0, le=1)] | None = None
    relative_threshold: Annotated[float, Field(ge=0, le=1)] | None = None
    near_misses: Annotated[int, Field(ge=0, le=MAX_TOP_K)] | None = None


class MemoryPromptIn(StrictSchema):
    model_config = _CLOSED

    message: Message
    user_id: ScopeId
    session_id: ScopeId | None = Field(
        None, description="A session of this user: its summary and recent messages join the prompt"
    )
    namespace: ScopeId | None = None
    agent_id: ScopeId | None = None
    budget: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        None, description="Token budget of the whole prompt (default: the server's)"
    )
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K)] | None = None


HISTORY_PAGE_DEFAULT = 50
HistoryLimit = Annotated[int, Field(ge=1, le=MAX_HISTORY_PAGE)]
