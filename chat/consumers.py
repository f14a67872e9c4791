"""The chat WebSocket: validates every frame, then runs turns in the background.

Protocol (JSON text frames). Client → server: {"type": "message", "text": str, "client_id": str}
and {"type": "ping"}. Server → client: turn_started, delta, tool, done, error, duplicate, pong.
A bad frame gets an error frame; the connection (and every other session) stays up.

A refused socket is accepted and then closed with 4401 (not signed in, or signed out since),
4403 (not this user's chat, or a page from another origin) or 4404 (no such chat, or it was
deleted), so the page can say why instead of reconnecting forever. A message over the server's
WebSocket limit (daphne's, 1 MiB) is closed with 1009 (core/serve.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from chat.ratelimit import allow_turn
from chat.selectors import message_saved
from chat.socket_access import chat_owner_or_refusal
from chat.turn_lock import ChatBusy, session_turn
from chat.turns import CHAT_DELETED, CHAT_DELETED_MIDWAY, ChatGone, Send, group_name, run_turn
from core.channel_layer import deliver
from core.outage import REDIS_DOWN, UNAVAILABLE_MESSAGE, OutageLog
from core.redis_client import get_async_redis, key
from core.text import clean_text
from core.websockets import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, ProductSocket
from memory import keys
from memory.keys import safe

logger = logging.getLogger(__name__)

MAX_CLIENT_ID = 64
_outage_log = OutageLog(logger, "chat turns")
# Keep references to running turns: a turn outlives the socket that started it.
_running: set[asyncio.Task[Any]] = set()


class ChatConsumer(ProductSocket):
    session_id: str
    user_id: str
    staff: bool

    async def connect(self) -> None:
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        user = self.scope["user"]
        user_id, refusal = await chat_owner_or_refusal(self.scope, session_id=self.session_id)
        if refusal:
            await self.refuse(refusal)
            return
        self.user_id = user_id
        self.staff = bool(user.is_staff)
        await self.join_group(group_name(self.session_id))
        await self.join_login_group()
        await self.accept()

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
        except RecursionError:
            await self._error("bad_frame", "That frame is nested too deeply.")
            return
        if not isinstance(frame, dict):
            await self._error("bad_frame", "A frame must be a JSON object with a 'type'.")
            return
        kind = frame.get("type")
        if kind == "ping":
            await self.send(text_data=json.dumps({"type": "pong"}))
        elif kind == "message":
            try:
                await self._message(frame)
            except REDIS_DOWN as exc:
                _outage_log.failed(exc)
                client_id = frame.get("client_id")
                await self._error(
                    "unavailable",
                    UNAVAILABLE_MESSAGE,
                    client_id=clean_text(client_id)[:MAX_CLIENT_ID] if isinstance(client_id, str) else "",
                )
        else:
            await self._error("bad_frame", f"Unknown frame type {clean_text(str(kind))[:40]!r}.")

    async def _message(self, frame: dict[str, Any]) -> None:
        text = frame.get("text")
        client_id = frame.get("client_id")
        client_id = clean_text(client_id) if isinstance(client_id, str) else ""
        if not 0 < len(client_id) <= MAX_CLIENT_ID:
            await self._error("bad_frame", "'client_id' must be a string of 1 to 64 characters.")
            return
        if not isinstance(text, str):
            await self._error("bad_frame", "'text' must be a string.", client_id=client_id)
            return
        # What is stored must always be renderable: no lone surrogates, no NUL.
        text = clean_text(text).strip()
        if not text:
            await self._error("empty_message", "The message is empty.", client_id=client_id)
            return
        if len(text) > settings.MESSAGE_MAX_CHARS:
            await self._error(
                "message_too_long",
                f"The message is {len(text)} characters; the limit is {settings.MESSAGE_MAX_CHARS}.",
                client_id=client_id,
            )
            return
        if not await self._still_open():
            return
        # A client that reconnects re-sends what it has not seen acknowledged: run each message once.
        seen = key("chat", "client_msg", safe(self.session_id), safe(client_id))
        if not await get_async_redis().set(seen, "1", nx=True, ex=3600):
            await self.send(text_data=json.dumps({"type": "duplicate", "client_id": client_id}))
            return
        try:
            allowed = await allow_turn(self.user_id)
        except REDIS_DOWN:
            await _forget(seen)
            raise
        if not allowed:
            await get_async_redis().delete(seen)
            await self._error(
                "rate_limited",
                f"Too many messages (at most {settings.CHAT_RATE_LIMIT_PER_MINUTE} a minute); wait a moment.",
                client_id=client_id,
            )
            return
        task = asyncio.create_task(self._run(text, client_id, seen))
        _running.add(task)
        task.add_done_callback(_running.discard)

    async def _still_open(self) -> bool:
        """The chat still exists and is still this user's (another tab may have deleted it, or a
        sign-in moved it to an account); if not, say so and close."""
        owner = await get_async_redis().hget(keys.session(self.session_id), "user_id")
        if owner is None:
            await self._error("chat_deleted", CHAT_DELETED)
            await self.close(code=CLOSE_NOT_FOUND)
            return False
        if owner.decode() != self.user_id:
            await self._error(
                "chat_moved", "This chat now belongs to another sign-in; reload the page to continue."
            )
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        return True

    async def _run(self, text: str, client_id: str, seen: str) -> None:
        group = group_name(self.session_id)

        async def send(frame: dict[str, Any]) -> None:
            # This process's tabs of the chat get the frame directly; other processes' tabs through
            # the channel layer. A delta may trust a recent "no other process" answer; the rest ask.
            try:
                await deliver(group, {"type": "chat.frame", "frame": frame}, fresh=frame["type"] != "delta")
            except Exception:
                logger.warning("frame delivery failed for session %s", self.session_id, exc_info=True)

        try:
            # One turn at a time per session, in every process, so the history never interleaves.
            async with session_turn(self.session_id):
                await run_turn(
                    user_id=self.user_id,
                    session_id=self.session_id,
                    text=text,
                    client_id=client_id,
                    staff=self.staff,
                    send=send,
                )
        except ChatBusy:
            await get_async_redis().delete(seen)  # not run: the same message may be sent again
            await send(
                {
                    "type": "error",
                    "code": "busy",
                    "client_id": client_id,
                    "message": "Engram is still answering an earlier message in this chat, so this one "
                    "was not saved; send it again when that answer is done.",
                }
            )
        except ChatGone as gone:
            await self._chat_gone(send, client_id, str(gone))
        except REDIS_DOWN as exc:
            _outage_log.failed(exc)
            await _forget(seen)
            await send(
                {
                    "type": "error",
                    "code": "unavailable",
                    "client_id": client_id,
                    "message": UNAVAILABLE_MESSAGE,
                }
            )
        except Exception:
            await self._failed(send, client_id)
        else:
            _outage_log.ok()

    async def _chat_gone(self, send: Send, client_id: str, message: str) -> None:
        # To every tab of the chat; the page stops on this code (closing here could overtake the frame).
        await send({"type": "error", "code": "chat_deleted", "client_id": client_id, "message": message})

    async def _failed(self, send: Send, client_id: str) -> None:
        """Say what went wrong, and only what is true about the message."""
        try:
            exists = bool(await get_async_redis().exists(keys.session(self.session_id)))
            saved = exists and await sync_to_async(message_saved, thread_sensitive=False)(
                session_id=self.session_id, client_id=client_id
            )
        except Exception:  # Redis itself may be what failed
            exists, saved = True, False
        if not exists:  # deleted meanwhile: whatever failed was reading or writing the gone chat
            logger.info("session %s was deleted during its turn", self.session_id)
            await self._chat_gone(send, client_id, CHAT_DELETED_MIDWAY)
            return
        logger.exception("turn failed in session %s", self.session_id)
        detail = (
            "Your message is saved; try again." if saved else "Your message was not saved; send it again."
        )
        await send(
            {
                "type": "error",
                "code": "internal",
                "client_id": client_id,
                "message": f"Something went wrong on our side. {detail}",
            }
        )

    async def chat_frame(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event["frame"]))


async def _forget(seen: str) -> None:
    """Best effort: the message did not run, so the same client id may be sent again (the page
    drops a message from its outbox on an error frame, so a lost marker costs nothing)."""
    with contextlib.suppress(*REDIS_DOWN):
        await get_async_redis().delete(seen)
