"""Retrieval traces: what one turn's prompt used and why, as saved beside the session.

A trace is written by memory.prompt and read by the inspector and the chat's demo panel. Traces
stay in Redis as long as their session: one saved before traces were typed has no `version` and
reads as version 1 (the same shape). Fields are read the way the panels always read them: a field
of the wrong shape reads as empty, so an odd old trace still shows what it can.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memory import working
from memory.redaction import TRACE_HIT_LISTS
from memory.types import SearchHit

TRACE_VERSION = 1


class TraceError(ValueError):
    """What is saved is not a trace this code reads (not an object, or a newer version)."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _strings(value: Any) -> list[str]:
    return [_text(v) for v in value if v] if isinstance(value, list) else []


def _numbers(value: Any) -> dict[str, float]:
    return {str(k): _number(v) for k, v in _mapping(value).items()}


@dataclass(frozen=True)
class TraceHit:
    """One memory as a trace keeps it: its text and scores at the time of the turn."""

    id: str
    text: str
    type: str
    reason: str = "match"
    pinned: bool = False
    scores: dict[str, float] = field(default_factory=dict)
    source: list[str] = field(default_factory=list)
    admitted_by: str = ""  # the rule that put it into the prompt (used memories only)
    why: str = ""  # why it was left out (left_out only)
    forgotten: bool = False  # its text was blanked since (memory.redaction)

    @classmethod
    def from_hit(cls, hit: SearchHit, *, admitted_by: str = "", why: str = "") -> TraceHit:
        memory = hit.memory
        return cls(
            id=memory.id,
            text=memory.text,
            type=str(memory.type),
            reason=hit.reason,
            pinned=memory.pinned,
            scores=hit.score.as_dict(),
            source=list(memory.source),
            admitted_by=admitted_by,
            why=why,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceHit:
        return cls(
            id=_text(data.get("id")),
            text=_text(data.get("text")),
            type=_text(data.get("type")),
            reason=_text(data.get("reason")) or "match",
            pinned=bool(data.get("pinned")),
            scores=_numbers(data.get("scores")),
            source=_strings(data.get("source")),
            admitted_by=_text(data.get("admitted_by")),
            why=_text(data.get("why")),
            forgotten=bool(data.get("forgotten")),
        )

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "type": self.type,
            "reason": self.reason,
            "pinned": self.pinned,
            "scores": dict(self.scores),
            "source": list(self.source),
        }
        # Only where they say something, as traces were always stored.
        for key in ("admitted_by", "why", "forgotten"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data


def _hits(value: Any) -> list[TraceHit]:
    return [TraceHit.from_dict(h) for h in value if isinstance(h, Mapping)] if isinstance(value, list) else []


@dataclass(frozen=True)
class TraceTokens:
    """Where the prompt's token budget went."""

    system_instructions: int = 0
    memories: int = 0
    summary: int = 0
    recent_messages: int = 0
    user_message: int = 0
    total: int = 0
    budget: int = 0
    exact: bool = False
    recent_message_count: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceTokens:
        counts = {
            name: int(_number(data.get(name)))
            for name in (
                "system_instructions",
                "memories",
                "summary",
                "recent_messages",
                "user_message",
                "total",
                "budget",
                "recent_message_count",
            )
        }
        return cls(**counts, exact=bool(data.get("exact")))

    def as_dict(self) -> dict[str, Any]:
        return {
            "system_instructions": self.system_instructions,
            "memories": self.memories,
            "summary": self.summary,
            "recent_messages": self.recent_messages,
            "user_message": self.user_message,
            "total": self.total,
            "budget": self.budget,
            "exact": self.exact,
            "recent_message_count": self.recent_message_count,
        }


@dataclass(frozen=True)
class RetrievalTrace:
    turn_id: str
    session_id: str
    user_id: str
    at: float
    query: str
    mode: str
    threshold: float = 0.0
    relative_threshold: float = 0.0
    cut: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)  # the scoring weights of the turn
    memories: list[TraceHit] = field(default_factory=list)
    dropped_for_budget: list[TraceHit] = field(default_factory=list)
    near_misses: list[TraceHit] = field(default_factory=list)
    left_out: list[TraceHit] = field(default_factory=list)
    tokens: TraceTokens = field(default_factory=TraceTokens)
    search_ms: float = 0.0
    took_ms: float = 0.0
    query_forgotten: bool = False  # the query said a forgotten memory's words (memory.redaction)
    version: int = TRACE_VERSION

    @classmethod
    def from_dict(cls, data: Any) -> RetrievalTrace:
        if not isinstance(data, Mapping):
            raise TraceError(f"a trace must be an object, not {type(data).__name__}")
        version = data.get("version", 1)
        if not isinstance(version, int) or not 1 <= version <= TRACE_VERSION:
            raise TraceError(f"trace version {version!r} is not one this code reads (1..{TRACE_VERSION})")
        return cls(
            version=version,
            turn_id=_text(data.get("turn_id")),
            session_id=_text(data.get("session_id")),
            user_id=_text(data.get("user_id")),
            at=_number(data.get("at")),
            query=_text(data.get("query")),
            mode=_text(data.get("mode")),
            threshold=_number(data.get("threshold")),
            relative_threshold=_number(data.get("relative_threshold")),
            cut=_number(data.get("cut")),
            weights=_numbers(data.get("weights")),
            memories=_hits(data.get("memories")),
            dropped_for_budget=_hits(data.get("dropped_for_budget")),
            near_misses=_hits(data.get("near_misses")),
            left_out=_hits(data.get("left_out")),
            tokens=TraceTokens.from_dict(_mapping(data.get("tokens"))),
            search_ms=_number(data.get("search_ms")),
            took_ms=_number(data.get("took_ms")),
            query_forgotten=bool(data.get("query_forgotten")),
        )

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": self.version,
            "turn_id": self.turn_id,
            "session_id": self.session_id,
            "user_id": self.user_id,
            "at": self.at,
            "query": self.query,
            "mode": self.mode,
            "threshold": self.threshold,
            "relative_threshold": self.relative_threshold,
            "cut": self.cut,
            "weights": dict(self.weights),
            **{name: [h.as_dict() for h in getattr(self, name)] for name in TRACE_HIT_LISTS},
            "tokens": self.tokens.as_dict(),
            "search_ms": self.search_ms,
            "took_ms": self.took_ms,
        }
        if self.query_forgotten:
            data["query_forgotten"] = True
        return data


def store_trace(trace: RetrievalTrace) -> None:
    working.save_trace(session_id=trace.session_id, turn_id=trace.turn_id, trace=trace.as_dict())


def turn_trace(*, session_id: str, turn_id: str) -> RetrievalTrace | None:
    """The trace of one turn, None when it has none. One this code cannot read raises TraceError:
    it is asked for right after this process saved it (the chat's recall panel), so an unreadable
    one is a bug to see, not to hide. session_traces, which lists traces older releases wrote,
    skips those instead."""
    stored = working.get_trace(session_id=session_id, turn_id=turn_id)
    return None if stored is None else RetrievalTrace.from_dict(stored)


def session_traces(*, session_id: str) -> list[RetrievalTrace]:
    """The session's traces in turn order. One this code cannot read (a newer release's, or damaged)
    is left out, not an error: one bad trace must not hide the session's others (the inspector's
    session page, the chat's recent recalls). turn_trace, asked for one it just saved, raises."""
    traces = []
    for stored in working.list_traces(session_id=session_id):
        try:
            traces.append(RetrievalTrace.from_dict(stored))
        except TraceError:
            continue
    return traces
