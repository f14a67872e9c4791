"""The chat WebSocket: validates every frame, then runs turns in the background.

Protocol (JSON text frames). Client → server: {"type": "message", "text": str, "client_id": str}
and {"type": "ping"}. Server → client: turn_started, delta, tool, done, error, duplicate, pong.
A bad frame gets an error frame; the connection (and every other session) stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat.identity import memory_user_id
from chat.ratelimit import allow_turn
from chat.turns import group_name, run_turn
from core.redis_client import get_async_redis, key
from memory import working
from memory.keys import safe

logger = logging.getLogger(__name__)

MAX_CLIENT_ID = 64
# Keep references to running turns: a turn outlives the socket that started it.
_running: set[asyncio.Task[Any]] = set()
# One lock per session with a turn running; weak values so idle sessions do not pile up.
_session_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


class ChatConsumer(AsyncWebsocketConsumer):
    session_id: str
    user_id: str
    staff: bool

    async def connect(self) -> None:
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        user = self.scope["user"]
        user_id = memory_user_id(user, self.scope["session"], create=False)
        if user_id is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        session = await sync_to_async(working.get_session, thread_sensitive=False)(session_id=self.session_id)
        if session is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if session.user_id != user_id:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user_id = user_id
        self.staff = bool(user.is_staff)
        await self.channel_layer.group_add(group_name(self.session_id), self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "user_id"):
            await self.channel_layer.group_discard(group_name(self.session_id), self.channel_name)

    async def _error(self, code: str, message: str, **extra: Any) -> None:
        await self.send(text_data=json.dumps({"type": "error", "code": code, "message": message, **extra}))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self._error("bad_frame", "Binary frames are not supported; send JSON text.")
            return
        if len(text_data.encode()) > settings.CHAT_MAX_FRAME_BYTES:
            await self._error(
                "frame_too_large", f"Frames are limited to {settings.CHAT_MAX_FRAME_BYTES} bytes."
            )
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            await self._error("bad_frame", "That frame is not valid JSON.")
            return
        if not isinstance(frame, dict):
            await self._error("bad_frame", "A frame must be a JSON object with a 'type'.")
            return
        kind = frame.get("type")
        if kind == "ping":
            await self.send(text_data=json.dumps({"type": "pong"}))
        elif kind == "message":
            await self._message(frame)
        else:
            await self._error("bad_frame", f"Unknown frame type {str(kind)[:40]!r}.")

    async def _message(self, frame: dict[str, Any]) -> None:
        text = frame.get("text")
        client_id = frame.get("client_id")
        if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID:
            await self._error("bad_frame", "'client_id' must be a string of 1 to 64 characters.")
            return
        if not isinstance(text, str) or not text.strip():
            await self._error("empty_message", "The message is empty.", client_id=client_id)
            return
        if len(text) > settings.MESSAGE_MAX_CHARS:
            await self._error(
                "message_too_long",
                f"The message is {len(text)} characters; the limit is {settings.MESSAGE_MAX_CHARS}.",
                client_id=client_id,
            )
            return
        # A client that reconnects re-sends what it has not seen acknowledged: run each message once.
        seen = key("chat", "client_msg", safe(self.session_id), safe(client_id))
        if not await get_async_redis().set(seen, "1", nx=True, ex=3600):
            await self.send(text_data=json.dumps({"type": "duplicate", "client_id": client_id}))
            return
        if not await allow_turn(self.user_id):
            await get_async_redis().delete(seen)
            await self._error(
                "rate_limited",
                f"Too many messages (at most {settings.CHAT_RATE_LIMIT_PER_MINUTE} a minute); wait a moment.",
                client_id=client_id,
            )
            return
        task = asyncio.create_task(self._run(text.strip(), client_id))
        _running.add(task)
        task.add_done_callback(_running.discard)

    async def _run(self, text: str, client_id: str) -> None:
        group = group_name(self.session_id)
        layer = self.channel_layer

        async def send(frame: dict[str, Any]) -> None:
            try:
                await layer.group_send(group, {"type": "chat.frame", "frame": frame})
            except Exception:
                # The layer is overloaded or down: at least the tab that sent the message hears about it.
                logger.warning("channel layer send failed for session %s", self.session_id, exc_info=True)
                with contextlib.suppress(Exception):
                    await self.send(text_data=json.dumps(frame))

        lock = _session_locks.get(self.session_id)
        if lock is None:
            lock = _session_locks[self.session_id] = asyncio.Lock()
        async with lock:  # one turn at a time per session, so the history never interleaves
            try:
                await run_turn(
                    user_id=self.user_id,
                    session_id=self.session_id,
                    text=text,
                    client_id=client_id,
                    staff=self.staff,
                    send=send,
                )
            except Exception:
                logger.exception("turn failed in session %s", self.session_id)
                await send(
                    {
                        "type": "error",
                        "code": "internal",
                        "client_id": client_id,
                        "message": "Something went wrong on our side. Your message is saved; try again.",
                    }
                )

    async def chat_frame(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event["frame"]))
