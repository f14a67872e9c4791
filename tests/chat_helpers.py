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


def socket_to(
    path: str, cookie: str = "", *, origin: str | None = "http://localhost", host: str = "localhost"
) -> WebsocketCommunicator:
    """A socket through the whole ASGI stack (origin check, auth, routing), as a browser opens it."""
    headers = [(b"cookie", cookie.encode()), (b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(application, path, headers=headers)


def communicator(session_id: str, cookie: str, *, origin: str = "http://localhost") -> WebsocketCommunicator:
    return socket_to(f"/ws/chat/{session_id}/", cookie, origin=origin)


async def refusal_code(comm: WebsocketCommunicator) -> int | None:
    """Connect, expecting a refusal: the close code the page gets. None when the handshake itself
    was rejected, which a browser only sees as 1006 with no reason."""
    connected, _ = await comm.connect()
    if not connected:
        return None
    message = await comm.receive_output(timeout=5)
    assert message["type"] == "websocket.close", f"not refused: {message}"
    return message.get("code")


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
