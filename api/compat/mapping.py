"""Translation between Agent Memory Server's shapes and Engram's: kinds, times, filters, records.

Rules a team switching from AMS should know (README, "Using Engram's memory from other agents"):
- Engram files every memory and session under a user. A call that names no `user_id` acts on
  the user `DEFAULT_USER_ID` ("default") of the key's app.
- Kinds: Engram's `procedural` memories read as `semantic` (the client knows three kinds); a
  `semantic` filter finds both.
- `dist` is 1 - Engram's final score (lower is closer, in Engram's rank order), and
  `distance_threshold` d keeps hits scoring at least 1 - d. Each result also carries `score`,
  Engram's breakdown.
- Filters Engram cannot express (`not_eq`/`not_in` on ids, `topics.all` over several values,
  `topics.none`, `last_accessed`) are refused with a 422 that says so, never ignored.
- A create by id is an upsert (`memory.services.save_memories`); an id is given to one memory
  only, ever (a used id is refused with words that never say whose it was).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from api.callers import ApiCaller
from api.compat.schemas import IdFilter, SearchFilters, SearchIn, TagFilter, TimeFilter
from memory import working
from memory.search import search_memories
from memory.search_params import MAX_TOP_K
from memory.selectors import list_memories
from memory.services import SavedMemory
from memory.types import InvalidInput, Memory, MemoryNotFound, MemoryType, ScoreBreakdown

DEFAULT_USER_ID = "default"

_AMS_KINDS: dict[str, list[MemoryType]] = {
    "semantic": [MemoryType.SEMANTIC, MemoryType.PROCEDURAL],
    "episodic": [MemoryType.EPISODIC],
    "message": [MemoryType.MESSAGE],
    "procedural": [MemoryType.PROCEDURAL],
}


def user_or_default(user_id: str | None) -> str:
    return user_id or DEFAULT_USER_ID


def ams_kind(memory_type: MemoryType) -> str:
    return "semantic" if memory_type == MemoryType.PROCEDURAL else str(memory_type)


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def epoch(moment: datetime) -> float:
    """A client's datetime as epoch seconds (a naive one is UTC, as AMS reads it)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def not_in_future(moment: datetime | None, *, now: float) -> float | None:
    """A client's creation time, but never later than now (the client refuses future times)."""
    return None if moment is None else min(epoch(moment), now)


def session_of(memory: Memory, caller: ApiCaller) -> str | None:
    """The memory's session as the caller names it; None when it has none, or one the caller's app
    did not open (a chat session of the same agent, say)."""
    try:
        return caller.external_session_id(memory.scope.session_id) or None
    except MemoryNotFound:
        return None


def asked_scope(before: Memory, changes: dict[str, Any], caller: ApiCaller) -> dict[str, str]:
    """The stored scope an edit's `user_id`, `namespace` and `session_id` name (those it sends),
    for `check_not_moved`: a session the caller names as the memory's own is the memory's."""
    asked: dict[str, str] = {}
    for name in ("user_id", "namespace"):
        if name in changes:
            asked[name] = changes[name] or ""
    if "session_id" in changes:
        named = changes["session_id"]
        if named == session_of(before, caller):
            asked["session_id"] = before.scope.session_id
        else:
            asked["session_id"] = caller.session_key(named) if named else ""
    return asked


def saved_status(saved: Sequence[SavedMemory]) -> str:
    """The create's acknowledgement, saying what was done (never "stored" for what was not)."""
    count = {outcome: sum(1 for s in saved if s.outcome == outcome) for outcome in ("added", "updated")}
    unchanged = len(saved) - count["added"] - count["updated"]
    return f"ok, stored {count['added']}, updated {count['updated']}, unchanged {unchanged} (already as sent)"


def prompt_user(caller: ApiCaller, session_id: str, asked: str | None) -> str:
    """Whose prompt: the user asked for, else the user of the caller's session, else the default."""
    if asked:
        return asked
    session = working.get_session(session_id=session_id) if session_id else None
    if session is not None and caller.admits_session(session):
        return session.user_id
    return DEFAULT_USER_ID


def record(memory: Memory, caller: ApiCaller) -> dict[str, Any]:
    """A memory as the client's MemoryRecord (plus Engram's version and flags)."""
    return {
        "id": memory.id,
        "text": memory.text,
        "session_id": session_of(memory, caller),
        "user_id": memory.scope.user_id,
        "namespace": memory.scope.namespace,
        "last_accessed": at(memory.last_accessed_at or memory.updated_at or memory.created_at),
        "created_at": at(memory.created_at),
        "updated_at": at(memory.updated_at or memory.created_at),
        "topics": list(memory.topics),
        "entities": list(memory.entities),
        "memory_hash": memory.content_hash or None,
        "discrete_memory_extracted": "t",
        "memory_type": ams_kind(memory.type),
        "persisted_at": at(memory.created_at),
        "extracted_from": list(memory.source) or None,
        "event_date": at(memory.event_date) if memory.event_date else None,
        "version": memory.version,
        "pinned": memory.pinned,
        "locked": memory.locked,
    }


def result(memory: Memory, score: ScoreBreakdown | None, caller: ApiCaller) -> dict[str, Any]:
    """A search hit as the client's MemoryRecordResult."""
    final = score.final if score else 1.0
    return {
        **record(memory, caller),
        "dist": round(max(0.0, 1.0 - final), 6),
        "score": score.as_dict() if score else {},
    }


def threshold(distance_threshold: float | None) -> float | None:
    return None if distance_threshold is None else max(0.0, 1.0 - distance_threshold)


# --- Filters -------------------------------------------------------------------------------------


def _one_id(value: IdFilter | None, *, name: str) -> str | None:
    if value is None:
        return None
    if value.not_eq is not None or value.not_in is not None:
        raise InvalidInput(f"{name}: not_eq and not_in are not supported here; use eq")
    if value.in_ is not None:
        if len(value.in_) != 1:
            raise InvalidInput(f"{name}: in_ takes exactly one value here; use eq")
        if value.eq is not None and value.eq != value.in_[0]:
            raise InvalidInput(f"{name}: eq and in_ disagree, so nothing could match")
        return value.in_[0]
    return value.eq


def _namespaces(value: IdFilter | None) -> dict[str, Any]:
    if value is None:
        return {}
    if value.not_eq is not None or value.not_in is not None:
        raise InvalidInput("namespace: not_eq and not_in are not supported here; use eq or in_")
    if value.in_ is not None and value.eq is None:
        return {"namespaces": value.in_}
    return {"namespace": _one_id(value, name="namespace")}


def kinds(value: IdFilter | None) -> list[MemoryType] | None:
    if value is None:
        return None
    named = [value.eq] if value.eq is not None else []
    named += value.in_ or []
    excluded = [value.not_eq] if value.not_eq is not None else []
    excluded += value.not_in or []
    for name in [*named, *excluded]:
        if name not in _AMS_KINDS:
            raise InvalidInput(f"memory_type: unknown kind {name!r}; use episodic, semantic or message")
    wanted = {t for name in named for t in _AMS_KINDS[name]} if named else set(MemoryType)
    wanted -= {t for name in excluded for t in _AMS_KINDS[name]}
    if not wanted:
        raise InvalidInput("memory_type: the filter leaves no kind to match")
    return sorted(wanted)


def _tags(value: TagFilter | None, *, name: str) -> list[str] | None:
    if value is None:
        return None
    if value.none:
        raise InvalidInput(f"{name}: none is not supported here; use any")
    if value.all and len(value.all) > 1:
        raise InvalidInput(f"{name}: all over several values is not supported here; use any")
    return (value.any or []) + (value.all or []) or None


def _times(value: TimeFilter | None, *, prefix: str) -> dict[str, float]:
    if value is None:
        return {}
    low = value.eq or value.gte
    high = value.eq or value.lte
    out: dict[str, float] = {}
    if low is not None:
        out[f"{prefix}_after"] = epoch(low)
    if high is not None:
        out[f"{prefix}_before"] = epoch(high)
    return out


def filter_kwargs(filters: SearchFilters, *, user_id: str | None = None) -> dict[str, Any]:
    """`ApiCaller.filter` arguments for a search body (the caller confines them to its key)."""
    if filters.last_accessed is not None:
        raise InvalidInput("last_accessed is not a filter Engram supports; use created_at")
    return {
        "user_id": user_or_default(user_id or _one_id(filters.user_id, name="user_id")),
        "session_id": _one_id(filters.session_id, name="session_id"),
        **_namespaces(filters.namespace),
        "types": kinds(filters.memory_type),
        "topics": _tags(filters.topics, name="topics"),
        "entities": _tags(filters.entities, name="entities"),
        **_times(filters.created_at, prefix="created"),
        **_times(filters.event_date, prefix="event"),
    }


# --- Search ----------------------------------------------------------------------------------------


def search_page(body: SearchIn, caller: ApiCaller) -> dict[str, Any]:
    """One page of the client's search (`offset`, `limit`, `next_offset`). Without text: the newest
    memories that match the filters (a listing, with its true total). With text: Engram's search
    for the first offset + limit hits (at most MAX_TOP_K), of which the page is the tail."""
    filter_ = caller.filter(**filter_kwargs(body))
    wanted = body.offset + body.limit
    if not body.text.strip():
        page = list_memories(filter=filter_, offset=body.offset, limit=body.limit)
        found = [result(m, None, caller) for m in page.memories]
        more = body.offset + len(found) < page.total
        return {"memories": found, "total": page.total, "next_offset": wanted if more else None}
    if wanted > MAX_TOP_K:
        raise InvalidInput(f"offset + limit may be at most {MAX_TOP_K}")
    searched = search_memories(
        filter=filter_,
        text=body.text,
        mode=body.search_mode or "hybrid",
        top_k=wanted,
        threshold=threshold(body.distance_threshold),
    )
    hits = searched.hits[body.offset : wanted]
    return {
        "memories": [result(h.memory, h.score, caller) for h in hits],
        "total": len(searched.hits),
        # A full page may have more behind it; a short one has not.
        "next_offset": wanted if len(searched.hits) == wanted else None,
    }
