"""A user's data as one JSON-ready document (the "download my data" shape): the inspector's export
and the API's. Read-only.

Memories that expired or were purged are not in it: what is left of them (history, audit entries)
is on its way out (memory/retention.py). With a confined owner (an app key) only that agent's
memories in its namespaces and that agent's sessions are in it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from memory import working
from memory.access import Owner
from memory.query import MemoryFilter, validate_scope_id
from memory.redaction import Forgotten, redact_trace, trace_memory_ids
from memory.selectors import deleted_memories, list_memories, memory_history
from memory.types import Memory

EXPORT_PAGE = 500
EXPORT_FORMAT = "engram-user-export/1"
_MAX_EXPORTED = 100_000


def memory_as_dict(memory: Memory) -> dict[str, Any]:
    data = asdict(memory)
    data["type"] = str(memory.type)
    data["created_by"] = memory.created_by.as_dict()
    return data


def _all_live_memories(filter_: MemoryFilter) -> list[Memory]:
    memories: list[Memory] = []
    offset = 0
    while True:
        page = list_memories(filter=filter_, offset=offset, limit=EXPORT_PAGE, sort_by="created_at")
        memories += page.memories
        offset += EXPORT_PAGE
        if not page.memories or offset >= page.total or offset > _MAX_EXPORTED:
            return memories


def _traces_without_gone_memories(session_id: str, *, kept: set[str]) -> list[dict[str, Any]]:
    """A memory that expired or was purged is not shipped, not even as a trace hit (the retention
    sweep blanks these in Redis too, but may not have run yet)."""
    traces = working.list_traces(session_id=session_id)
    for trace in traces:
        redact_trace(trace, Forgotten(memory_ids=frozenset(trace_memory_ids(trace) - kept)))
    return traces


def _with_history(memory: Memory) -> dict[str, Any]:
    return {**memory_as_dict(memory), "history": [e.as_dict() for e in memory_history(memory_id=memory.id)]}


def export_user(
    *,
    user_id: str,
    exported_by: str,
    owner: Owner | None = None,
    admits_session: Callable[[working.Session], bool] | None = None,
) -> dict[str, Any]:
    """Everything Engram holds about one user id (within `owner`'s reach, when given). Sessions are
    those of the owner's agent, and of them only those `admits_session` accepts (a caller that keeps
    its own sessions apart, as the API's app keys do, says which are its own)."""
    user_id = validate_scope_id(user_id, name="user_id")
    reach = owner or Owner.user(user_id)
    live = _all_live_memories(
        MemoryFilter.build(
            user_id=user_id,
            agent_id=reach.agent_id,
            namespaces=list(reach.namespaces) if reach.namespaces is not None else None,
        )
    )
    deleted = [m for m in deleted_memories(user_id=user_id) if reach.admits(m)]
    kept = {m.id for m in live} | {m.id for m in deleted}
    sessions = []
    for session in working.list_sessions(user_id=user_id):
        if reach.agent_id is not None and session.agent_id != reach.agent_id:
            continue
        if admits_session is not None and not admits_session(session):
            continue
        sessions.append(
            {
                **asdict(session),
                "messages": [m.as_dict() for m in working.get_messages(session_id=session.id)],
                "data": working.get_session_data(session_id=session.id),
                "traces": _traces_without_gone_memories(session.id, kept=kept),
            }
        )
    return {
        "format": EXPORT_FORMAT,
        "user_id": user_id,
        "exported_at": time.time(),
        "exported_by": exported_by,
        "memories": [_with_history(m) for m in live],
        "deleted_memories": [_with_history(m) for m in deleted],
        "sessions": sessions,
    }
