"""Who may open a chat's sockets: the chat's owner only (staff too: the chat and its demo panel show
one's own chat, support staff read a customer's in the inspector)."""

from __future__ import annotations

from typing import Any

import redis
from asgiref.sync import sync_to_async

from chat.identity import memory_user_id
from core.websockets import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from memory import working
from memory.types import InvalidInput


async def chat_owner_or_refusal(scope: dict[str, Any], *, session_id: str) -> tuple[str, int]:
    """(the owner's memory user id, 0) when the socket's user owns the chat, else ("", close code)."""
    user_id = memory_user_id(scope["user"], scope["session"], create=False)
    if user_id is None:
        return "", CLOSE_UNAUTHENTICATED
    try:
        session = await sync_to_async(working.get_session, thread_sensitive=False)(session_id=session_id)
    # An id no session can have (too long, control characters) or one naming another kind of key:
    # no such chat.
    except (InvalidInput, redis.ResponseError):
        session = None
    if session is None:
        return "", CLOSE_NOT_FOUND
    if session.user_id != user_id:
        return "", CLOSE_FORBIDDEN
    return user_id, 0
