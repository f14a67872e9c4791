"""Writes behind the chat pages: chat sessions and a user's own memories."""

from __future__ import annotations

from django.conf import settings
from ulid import ULID

from memory import working
from memory.extraction.messages import forget_sources
from memory.selectors import get_memory
from memory.services import delete_memory
from memory.types import Actor, ActorKind, MemoryNotFound, MemoryType


class TooManyChats(Exception):
    """The user already keeps CHAT_MAX_SESSIONS_PER_USER chats."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} chats per user")
        self.limit = limit


def start_session(*, user_id: str, title: str = "") -> working.Session:
    """A new chat, unless the user is at the cap (expired chats do not count: the count prunes them).

    Two tabs starting a chat at the same moment can both pass the check: the cap bounds storage,
    one over it does no harm.
    """
    limit = settings.CHAT_MAX_SESSIONS_PER_USER
    if working.session_count(user_id=user_id) >= limit:
        raise TooManyChats(limit)
    return working.ensure_session(
        session_id=str(ULID()), user_id=user_id, title=title.strip()[:200] or "New chat"
    )


def rename_session(*, session: working.Session, title: str) -> None:
    working.rename_session(session_id=session.id, title=title.strip() or "Untitled chat")


def delete_session(*, session: working.Session) -> None:
    working.delete_session(session_id=session.id)


def forget_own_memory(*, user_id: str, memory_id: str) -> None:
    """A user deletes one of their memories (soft delete: staff can still undo it for the grace period)."""
    memory = get_memory(memory_id=memory_id, include_deleted=False)
    if memory.scope.user_id != user_id:
        raise MemoryNotFound(f"no memory {memory_id}")
    actor = Actor(ActorKind.USER, user_id)
    deleted = delete_memory(memory_id=memory_id, actor=actor, reason="deleted by the user")
    if deleted.type != MemoryType.MESSAGE:
        forget_sources(deleted, actor=actor, reason="deleted by the user")
