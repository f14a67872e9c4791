"""Writes behind the chat pages: chat sessions and a user's own memories."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress

from django.conf import settings
from ulid import ULID

from chat.titles import DEFAULT_TITLE, MAX_TITLE_CHARS, clean_title, title_from_message
from memory import working
from memory.access import Owner
from memory.extraction.messages import forget_sources
from memory.services import delete_memory, restore_memory
from memory.types import Actor, ActorKind, InvalidInput, Memory, MemoryLocked, MemoryNotFound, MemoryType


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
        session_id=str(ULID()), user_id=user_id, title=clean_title(title)[:MAX_TITLE_CHARS] or DEFAULT_TITLE
    )


def open_new_chat(*, user_id: str) -> working.Session:
    """What "New chat" opens: the user's newest chat while nothing was said in it yet (so clicking
    twice does not leave empty chats behind), else a new one (start_session, with its cap)."""
    newest = working.session_ids_for_user(user_id=user_id)[:1]
    session = working.get_session(session_id=newest[0]) if newest else None
    if session is not None and session.message_count == 0 and not session.summary:
        return session
    return start_session(user_id=user_id)


def rename_session(*, session: working.Session, title: str) -> None:
    working.rename_session(session_id=session.id, title=clean_title(title)[:MAX_TITLE_CHARS] or DEFAULT_TITLE)


def title_after_first_message(*, session_id: str, text: str) -> str:
    """Name a chat after its first message, unless the user already named it; the new title or ""."""
    session = working.get_session(session_id=session_id)
    if session is None or session.title not in ("", DEFAULT_TITLE):
        return ""
    title = title_from_message(text)
    if title:
        working.rename_session(session_id=session_id, title=title)
    return title


def delete_session(*, session: working.Session) -> None:
    working.delete_session(session_id=session.id)


def forget_own_memory(*, user_id: str, memory_id: str) -> tuple[Memory, list[str]]:
    """A user deletes one of their memories, with the words a fact was learned from (soft delete:
    restorable for the grace period). Returns the memory and the ids of those words."""
    actor = Actor(ActorKind.USER, user_id)
    deleted = delete_memory(
        memory_id=memory_id, owner=Owner.user(user_id), actor=actor, reason="deleted by the user"
    )
    sources = []
    if deleted.type != MemoryType.MESSAGE:
        sources = forget_sources(deleted, actor=actor, reason="deleted by the user")
    return deleted, sources


def restore_own_memory(*, user_id: str, memory_id: str, sources: Sequence[str] = ()) -> Memory:
    """Undo a user's forget within the grace period: the memory and the words forgotten with it
    (`sources`, as forget_own_memory returned them; any that are not this user's, or no longer in
    the trash, are skipped)."""
    owner, actor = Owner.user(user_id), Actor(ActorKind.USER, user_id)
    restored = restore_memory(memory_id=memory_id, owner=owner, actor=actor, reason="restored by the user")
    for source_id in sources:
        # Purged meanwhile, locked by support, not theirs or not an id: the memory itself is back.
        with suppress(MemoryNotFound, MemoryLocked, InvalidInput):
            restore_memory(
                memory_id=source_id, owner=owner, actor=actor, reason="restored by the user (its words)"
            )
    return restored
