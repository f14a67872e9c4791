"""The engine's data types and errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, Literal


class MemoryType(StrEnum):
    SEMANTIC = "semantic"
    EPISODIC = "episodic"
    PROCEDURAL = "procedural"
    MESSAGE = "message"


class ActorKind(StrEnum):
    USER = "user"
    STAFF = "staff"
    EXTRACTOR = "extractor"
    TOOL = "tool"
    SYSTEM = "system"
    APP = "app"  # another agent, through an app API key (api/, the MCP server)


class EngineError(Exception):
    """Base of every error the engine raises on purpose; the message is safe to show."""


class InvalidInput(EngineError, ValueError):
    """Bad text, id, filter or argument."""


class MemoryNotFound(EngineError, LookupError):
    pass


class MemoryGone(MemoryNotFound):
    """The memory a request names was there and is not any more: deleted (in the trash) or gone for
    good. Still "not found" for engine callers that skip what went away (an extraction replay);
    the API answers 409, since the request itself was right (a replay of a create that succeeded,
    a create by an id the caller deleted)."""


class IdUnavailable(InvalidInput):
    """A caller-chosen id that cannot be given to a new memory: in use, or used before (an id is
    given once, so a new memory never inherits an old one's history). The words never say whose."""


class MemoryLocked(EngineError):
    """A staff lock or pin forbids this change for this actor."""


class VersionConflict(EngineError):
    """The memory changed since the caller read it, or changes too fast to apply this one."""


class StaleVersion(VersionConflict):
    """The memory is not at the version the caller said it read (`expected_version`): the REST
    API answers 412 to a stale `If-Match`, while contention alone stays a VersionConflict."""


class RequestReplayMismatch(EngineError):
    """An idempotency key already applied to another request was sent with different content."""


class BelongsToAnotherUser(EngineError):
    """The id names something stored for another user (a working-memory session): the request is
    well formed but conflicts with what is stored, so the API answers 409, not 422."""


class LeaseLost(EngineError):
    """The lock this write depended on is no longer the writer's: an erase or an identity move
    took the job over (or the lock expired). The write did not happen."""


@dataclass(frozen=True)
class Lease:
    """A held lock (its key and the holder's token): writes made under it check it is still held."""

    key: str
    token: str


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str = ""
    model: str = ""
    prompt_version: str = ""

    def as_dict(self) -> dict[str, str]:
        data = {"kind": str(self.kind), "id": self.id}
        if self.model:
            data["model"] = self.model
        if self.prompt_version:
            data["prompt_version"] = self.prompt_version
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Actor:
        return cls(
            kind=ActorKind(data.get("kind", "system")),
            id=str(data.get("id", "")),
            model=str(data.get("model", "")),
            prompt_version=str(data.get("prompt_version", "")),
        )

    def label(self) -> str:
        parts = [str(self.kind)]
        if self.id:
            parts.append(self.id)
        if self.model:
            parts.append(f"model={self.model}")
        if self.prompt_version:
            parts.append(f"prompt={self.prompt_version}")
        return " ".join(parts)


SYSTEM = Actor(ActorKind.SYSTEM, "engine")


@dataclass(frozen=True)
class Scope:
    """Who a memory belongs to. user_id is required; the rest narrow it."""

    user_id: str
    agent_id: str = "engram"
    namespace: str = "default"
    session_id: str = ""


# A `message` memory carries who said it as a topic ("said-by:user", "said-by:assistant").
ROLE_TOPIC_PREFIX = "said-by:"


@dataclass
class Memory:
    """A long-term memory: its text, whose it is (scope), where it came from, its flags and its
    lifetime. Times are seconds since the epoch; ttl_seconds is what is left when read."""

    id: str
    text: str
    type: MemoryType
    scope: Scope
    topics: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    event_date: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    last_accessed_at: float = 0.0
    access_count: int = 0
    content_hash: str = ""
    version: int = 1
    pinned: bool = False
    locked: bool = False
    source: list[str] = field(default_factory=list)
    created_by: Actor = SYSTEM
    ttl_seconds: int | None = None  # remaining TTL when read; None = no expiry
    deleted: bool = False

    @property
    def said_by(self) -> str:
        """Who said a `message` memory ("user" or "assistant"); "" for other memories."""
        for topic in self.topics:
            if topic.startswith(ROLE_TOPIC_PREFIX):
                return topic.removeprefix(ROLE_TOPIC_PREFIX)
        return ""

    def snapshot(self) -> dict[str, Any]:
        """The editable state, as history stores it for diffs and version restore."""
        return {
            "text": self.text,
            "type": str(self.type),
            "topics": list(self.topics),
            "entities": list(self.entities),
            "event_date": self.event_date,
        }


@dataclass(frozen=True)
class ScoreBreakdown:
    vector: float  # cosine similarity in [0, 1]
    keyword: float  # BM25 squashed into [0, 1)
    recency: float  # 0.5 ** (age / half-life)
    final: float
    bm25_raw: float = 0.0
    # Conversation context: the best match in the memory's session, and in the candidates said right
    # before/after it in that session (see memory.search.search_memories).
    session: float = 0.0
    neighbour: float = 0.0
    # 1 when the memory is filed under a topic the question is about (memory.topics).
    topic: float = 0.0
    # Profile questions ("what do you remember about me?") rank memories by importance instead
    # (type, topic, recency, use; see memory.recall).
    importance: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, SCORE_DIGITS) for k, v in asdict(self).items()}


# Scores are stored (traces, chat frames) with SCORE_DIGITS decimals and shown with 3.
SCORE_DIGITS = 4


def score_text(value: float, *, digits: int = 3) -> str:
    """A score as every page shows it: its stored value rounded once, half up (as the templates'
    floatformat does), so a trace's words and its grid never disagree in the last digit."""
    stored = Decimal(repr(round(float(value), SCORE_DIGITS)))
    return str(stored.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


# Why a memory is in a prompt: it scored above the cut, staff pinned it, or the user asked for
# their profile.
HitReason = Literal["match", "pinned", "profile"]


@dataclass(frozen=True)
class SearchHit:
    memory: Memory
    score: ScoreBreakdown
    reason: HitReason = "match"


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    near_misses: list[SearchHit]
    threshold: float  # the absolute floor
    mode: str
    took_ms: float
    # A hit needs final >= cut = max(threshold, relative_threshold x the best final score).
    relative_threshold: float = 0.0
    cut: float = 0.0


@dataclass(frozen=True)
class HistoryEvent:
    """One change to a memory: what happened, who did it (actor), when, and the state before and
    after (`old`, `new`: text, type, topics, entities, event date)."""

    event: str
    memory_id: str
    user_id: str
    version: int
    actor: Actor
    at: float
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def old_text(self) -> str | None:
        return None if self.old is None else str(self.old.get("text", ""))

    @property
    def new_text(self) -> str | None:
        return None if self.new is None else str(self.new.get("text", ""))

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "memory_id": self.memory_id,
            "user_id": self.user_id,
            "version": self.version,
            "actor": self.actor.as_dict(),
            "at": self.at,
            "old": self.old,
            "new": self.new,
            "reason": self.reason,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEvent:
        return cls(
            event=data["event"],
            memory_id=data["memory_id"],
            user_id=data["user_id"],
            version=int(data["version"]),
            actor=Actor.from_dict(data["actor"]),
            at=float(data["at"]),
            old=data.get("old"),
            new=data.get("new"),
            reason=data.get("reason", ""),
            details=data.get("details") or {},
        )
