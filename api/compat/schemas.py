"""The wire shapes of Redis Agent Memory Server's `/v1/...` API, as agent-memory-client 0.14 sends
and reads them (notes/issue16-research.md, section 2). Only what that client uses; unknown keys
are ignored, as the server they imitate does."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from django.conf import settings
from ninja import Field, Schema
from pydantic import BaseModel, BeforeValidator, ConfigDict

from memory.types import InvalidInput

AmsMemoryType = Literal["episodic", "semantic", "message"]
MIN_WINDOW, MAX_WINDOW = 200, 2_000_000


class _In(BaseModel):
    # Strict: a value of the wrong JSON type is refused, not coerced (`false` is no 0); unknown
    # keys are ignored, as AMS ignores them. A pydantic model, not ninja's Schema: that one reads
    # any object's attributes, so a list where an object belongs would pass as all defaults.
    model_config = ConfigDict(extra="ignore", strict=True)


def _iso_text(value: object) -> object:
    if not isinstance(value, str | datetime):
        raise ValueError("a time must be an ISO 8601 string")
    return value


# A time on the wire: an ISO 8601 string (strict mode alone would refuse the string).
Moment = Annotated[datetime, Field(strict=False), BeforeValidator(_iso_text)]
# agent-memory-client sends context_window_max as a string of digits.
WindowSize = int | Annotated[str, Field(pattern=r"^[0-9]{1,7}$")]


# --- Filters (search bodies) ---------------------------------------------------------------------


class _FilterIn(_In):
    # A key inside a filter that is not one of the client's (`in` for `in_`, `gt` for `gte`) is
    # refused: ignored, it would drop the condition and answer as if none had been asked.
    model_config = ConfigDict(extra="forbid", strict=True)


class IdFilter(_FilterIn):
    """session_id / namespace / user_id / memory_type: `in_` keeps its underscore on the wire."""

    eq: str | None = None
    in_: list[str] | None = None
    not_eq: str | None = None
    not_in: list[str] | None = None


class TagFilter(_FilterIn):
    any: list[str] | None = None
    all: list[str] | None = None
    none: list[str] | None = None


class TimeFilter(_FilterIn):
    gte: Moment | None = None
    lte: Moment | None = None
    eq: Moment | None = None


class SearchFilters(_In):
    session_id: IdFilter | None = None
    namespace: IdFilter | None = None
    user_id: IdFilter | None = None
    memory_type: IdFilter | None = None
    topics: TagFilter | None = None
    entities: TagFilter | None = None
    created_at: TimeFilter | None = None
    last_accessed: TimeFilter | None = None
    event_date: TimeFilter | None = None
    distance_threshold: float | None = Field(None, ge=0.0, le=2.0)
    search_mode: Literal["semantic", "keyword", "hybrid"] | None = None
    limit: int = Field(10, ge=1, le=100)
    offset: int = Field(0, ge=0, le=99)


class SearchIn(SearchFilters):
    text: str = Field("", max_length=settings.MESSAGE_MAX_CHARS)


# --- Long-term memory ----------------------------------------------------------------------------


class MemoryRecordIn(_In):
    id: str = Field(..., min_length=1, max_length=64)
    text: str = Field(..., max_length=settings.MEMORY_MAX_TEXT_CHARS)
    session_id: str | None = None
    user_id: str | None = None
    namespace: str | None = None
    topics: list[str] | None = None
    entities: list[str] | None = None
    # Engram's own kind is accepted too; the client sends only the three AMS kinds.
    memory_type: Literal["episodic", "semantic", "message", "procedural"] = "message"
    created_at: Moment | None = None
    event_date: Moment | None = None
    extracted_from: list[str] | None = None


class CreateMemoriesIn(_In):
    memories: list[MemoryRecordIn] = Field(..., min_length=1, max_length=100)
    deduplicate: bool = True


class MemoryEditIn(_In):
    """PATCH: the fields to change. Moving a memory to another user, namespace or session is not
    an edit Engram makes (it is refused unless the value is the memory's own)."""

    text: str | None = Field(None, max_length=settings.MEMORY_MAX_TEXT_CHARS)
    topics: list[str] | None = None
    entities: list[str] | None = None
    memory_type: Literal["episodic", "semantic", "message", "procedural"] | None = None
    event_date: Moment | None = None
    namespace: str | None = None
    user_id: str | None = None
    session_id: str | None = None


class MemoryRecordOut(Schema):
    id: str
    text: str
    session_id: str | None = None
    user_id: str | None = None
    namespace: str | None = None
    last_accessed: datetime
    created_at: datetime
    updated_at: datetime
    topics: list[str] | None = None
    entities: list[str] | None = None
    memory_hash: str | None = None
    discrete_memory_extracted: Literal["t", "f"] = "t"
    memory_type: AmsMemoryType
    persisted_at: datetime | None = None
    extracted_from: list[str] | None = None
    event_date: datetime | None = None
    # Engram's own: the record's version and pinned/locked flags (the client ignores extra keys).
    version: int
    pinned: bool
    locked: bool


class MemoryRecordResultOut(MemoryRecordOut):
    dist: float
    score: dict[str, float]


class MemoryRecordResultsOut(Schema):
    memories: list[MemoryRecordResultOut]
    total: int
    next_offset: int | None = None


# --- Working memory ------------------------------------------------------------------------------


class MessageIn(_In):
    role: Literal["user", "assistant", "system", "tool"]
    content: str = Field(..., max_length=settings.MESSAGE_MAX_CHARS)
    id: str | None = Field(None, min_length=1, max_length=64)
    created_at: Moment | None = None


Strategy = Literal["discrete", "summary", "preferences", "custom"]


class StrategyIn(_In):
    strategy: Strategy = "discrete"
    config: dict[str, Any] = Field(default_factory=dict)


class StrategyConfig(Schema):
    strategy: Strategy = "discrete"
    config: dict[str, Any] = Field(default_factory=dict)


class WorkingMemoryIn(_In):
    session_id: str | None = None
    messages: list[MessageIn] = Field(default_factory=list, max_length=200)
    memories: list[dict[str, Any]] = Field(default_factory=list)
    data: dict[str, Any] | None = None
    context: str | None = Field(None, max_length=settings.MESSAGE_MAX_CHARS)
    user_id: str | None = None
    namespace: str | None = None
    long_term_memory_strategy: StrategyIn | None = None
    ttl_seconds: int | None = None


class MessageOut(Schema):
    id: str
    role: str
    content: str
    created_at: datetime
    persisted_at: datetime | None = None
    discrete_memory_extracted: Literal["t", "f"] = "f"


class WorkingMemoryOut(Schema):
    session_id: str
    messages: list[MessageOut]
    memories: list[MemoryRecordOut] = Field(default_factory=list)
    data: dict[str, Any] | None = None
    context: str | None = None
    user_id: str | None = None
    namespace: str | None = None
    tokens: int = 0
    long_term_memory_strategy: StrategyConfig
    ttl_seconds: int | None = None
    last_accessed: datetime
    context_percentage_total_used: float | None = None
    context_percentage_until_summarization: float | None = None
    new_session: bool | None = None
    # Never true: the client would PUT the session again (AMS's deprecated "unsaved" sessions).
    unsaved: bool | None = None


class SessionListOut(Schema):
    sessions: list[str]
    total: int


# --- Health, acks, memory prompt -----------------------------------------------------------------


class HealthOut(Schema):
    now: float


class AckOut(Schema):
    status: str


class PromptSessionIn(_In):
    session_id: str = Field(..., min_length=1, max_length=200)
    namespace: str | None = None
    model_name: str | None = None
    context_window_max: WindowSize | None = None
    user_id: str | None = None

    def budget(self) -> int | None:
        """The prompt's token budget: the model's context window, when given."""
        if self.context_window_max is None:
            return None
        window = int(self.context_window_max)
        if not MIN_WINDOW <= window <= MAX_WINDOW:
            raise InvalidInput(f"context_window_max must be {MIN_WINDOW} to {MAX_WINDOW} tokens")
        return window


class MemoryPromptIn(_In):
    query: str = Field(..., min_length=1, max_length=settings.MESSAGE_MAX_CHARS)
    session: PromptSessionIn | None = None
    long_term_search: SearchFilters | None = None


class PromptContent(Schema):
    type: Literal["text"] = "text"
    text: str


class PromptMessage(Schema):
    role: Literal["system", "user", "assistant"]
    content: PromptContent


class MemoryPromptOut(Schema):
    messages: list[PromptMessage]
    long_term_memories: list[MemoryRecordResultOut] | None = None
    # Engram's own: the prompt's token breakdown (the same build_prompt the chat uses).
    token_breakdown: dict[str, int]
