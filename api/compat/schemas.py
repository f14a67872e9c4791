"""The wire shapes of Redis Agent Memory Server's `/v1/...` API, as agent-memory-client 0.14 sends
and reads them (notes/issue16-research.md, section 2). Only what that client uses; unknown keys
are ignored, as the server they imitate does."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema
from pydantic import ConfigDict

AmsMemoryType = Literal["episodic", "semantic", "message"]


class _In(Schema):
    model_config = ConfigDict(extra="ignore")


# --- Filters (search bodies) ---------------------------------------------------------------------


class IdFilter(_In):
    """session_id / namespace / user_id / memory_type: `in_` keeps its underscore on the wire."""

    eq: str | None = None
    in_: list[str] | None = None
    not_eq: str | None = None
    not_in: list[str] | None = None


class TagFilter(_In):
    any: list[str] | None = None
    all: list[str] | None = None
    none: list[str] | None = None


class TimeFilter(_In):
    gte: datetime | None = None
    lte: datetime | None = None
    eq: datetime | None = None


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
    text: str = Field("", max_length=20_000)


# --- Long-term memory ----------------------------------------------------------------------------


class MemoryRecordIn(_In):
    id: str = Field(..., min_length=1, max_length=64)
    text: str = Field(..., max_length=50_000)
    session_id: str | None = None
    user_id: str | None = None
    namespace: str | None = None
    topics: list[str] | None = None
    entities: list[str] | None = None
    # Engram's own kind is accepted too; the client sends only the three AMS kinds.
    memory_type: Literal["episodic", "semantic", "message", "procedural"] = "message"
    created_at: datetime | None = None
    event_date: datetime | None = None
    extracted_from: list[str] | None = None


class CreateMemoriesIn(_In):
    memories: list[MemoryRecordIn] = Field(..., min_length=1, max_length=100)
    deduplicate: bool = True


class MemoryEditIn(_In):
    """PATCH: the fields to change. Moving a memory to another user, namespace or session is not
    an edit Engram makes (it is refused unless the value is the memory's own)."""

    text: str | None = Field(None, max_length=50_000)
    topics: list[str] | None = None
    entities: list[str] | None = None
    memory_type: Literal["episodic", "semantic", "message", "procedural"] | None = None
    event_date: datetime | None = None
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
    content: str = Field(..., max_length=200_000)
    id: str | None = Field(None, min_length=1, max_length=64)
    created_at: datetime | None = None


class StrategyConfig(Schema):
    strategy: Literal["discrete", "summary", "preferences", "custom"] = "discrete"
    config: dict[str, Any] = Field(default_factory=dict)


class WorkingMemoryIn(_In):
    session_id: str | None = None
    messages: list[MessageIn] = Field(default_factory=list, max_length=1000)
    memories: list[dict[str, Any]] = Field(default_factory=list)
    data: dict[str, Any] | None = None
    context: str | None = Field(None, max_length=200_000)
    user_id: str | None = None
    namespace: str | None = None
    long_term_memory_strategy: StrategyConfig | None = None
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
    # The client sends it as a string.
    context_window_max: int | None = Field(None, ge=200, le=2_000_000)
    user_id: str | None = None


class MemoryPromptIn(_In):
    query: str = Field(..., min_length=1, max_length=20_000)
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
