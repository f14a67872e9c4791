"""Connecting to the chat socket as a logged-in user or an anonymous visitor."""

from __future__ import annotations

from typing import Any

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore

from chat.identity import ANON_SESSION_KEY, account_memory_id, anonymous_memory_id
from config.asgi import application
from memory import working


def session_cookie_for_user(user: Any) -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def anonymous_cookie(anon_id: str = "visitor1") -> str:
    store = SessionStore()
    store[ANON_SESSION_KEY] = anon_id
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def make_user(username: str = "alice", *, staff: bool = False) -> tuple[Any, str]:
    user = get_user_model().objects.create_user(username, password=f"pw-{username}-12345", is_staff=staff)
    return user, account_memory_id(user.pk)


def open_session(memory_user_id: str, session_id: str = "s-chat") -> str:
    working.ensure_session(session_id=session_id, user_id=memory_user_id)
    return session_id


def communicator(session_id: str, cookie: str, *, origin: str = "http://localhost") -> WebsocketCommunicator:
    headers = [(b"cookie", cookie.encode()), (b"origin", origin.encode()), (b"host", b"localhost")]
    return WebsocketCommunicator(application, f"/ws/chat/{session_id}/", headers=headers)


async def frames_until(
    comm: WebsocketCommunicator, kind: str, *, timeout: float = 20
) -> list[dict[str, Any]]:
    """Every frame up to and including the first of `kind`."""
    frames = []
    while True:
        frame = await comm.receive_json_from(timeout=timeout)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


__all__ = ["anonymous_memory_id"]
