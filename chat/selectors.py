"""Reads behind the chat pages."""

from __future__ import annotations

from django.http import Http404

from memory import working
from memory.query import MemoryFilter
from memory.selectors import MemoryPage, list_memories
from memory.types import InvalidInput


def owned_session(*, user_id: str, session_id: str) -> working.Session:
    """The session if it exists and belongs to this user; 404 otherwise (never a hint it exists)."""
    try:
        session = working.get_session(session_id=session_id)
    except InvalidInput as exc:
        raise Http404("no such chat") from exc
    if session is None or session.user_id != user_id:
        raise Http404("no such chat")
    return session


def sessions_for(*, user_id: str) -> list[working.Session]:
    return working.list_sessions(user_id=user_id)


def own_memories(*, user_id: str, offset: int = 0, limit: int = 100) -> MemoryPage:
    return list_memories(filter=MemoryFilter.build(user_id=user_id), offset=offset, limit=limit)
