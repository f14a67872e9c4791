"""The memory demo panel's WebSocket (/ws/chat/<session>/demo/): one-way, JSON frames.

Server → client: `snapshot` on connect ({"recalls": [...], "changes": [...]}, the last turns and
background changes, so a reload keeps the story), then `recall` after each turn of the chat (from
the turn's saved retrieval trace) and `change` for each background change of the chat owner's
memories (mutation events, and the extractor's no-op decisions for this chat). Frame shapes are
in chat/demo.py.

Guarded like the chat socket (core.websockets.OriginCheck; the chat's owner only; 4401 / 4403 /
4404), and open only to staff or on a DEBUG server: anyone else gets 4403 before the chat is even
looked up.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import sync_to_async

from chat import demo
from chat.socket_access import chat_owner_or_refusal
from chat.turns import group_name
from core.websockets import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, ProductSocket
from memory.events import FEED_GROUP, decisions_group

logger = logging.getLogger(__name__)

# Chat frames after which the turn's trace is saved (the trace is written before the reply
# streams, so a turn whose model failed has one too).
_TURN_ENDS = {"done", "error"}


class DemoConsumer(ProductSocket):
    session_id: str
    owner: str

    async def connect(self) -> None:
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        user = self.scope["user"]
        if not demo.demo_allowed(user):
            # Signed out and not on a DEBUG server: say "signed out", the page can send to the login.
            await self.refuse(CLOSE_UNAUTHENTICATED if not user.is_authenticated else CLOSE_FORBIDDEN)
            return
        user_id, refusal = await chat_owner_or_refusal(self.scope, session_id=self.session_id)
        if refusal:
            await self.refuse(refusal)
            return
        self.owner = user_id
        await self.join_group(group_name(self.session_id))
        await self.join_group(FEED_GROUP)
        await self.join_group(decisions_group(self.session_id))
        await self.join_login_group()
        await self.accept()
        story = await sync_to_async(demo.snapshot, thread_sensitive=False)(
            session_id=self.session_id, user_id=self.owner
        )
        await self._send(story)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The panel only listens; anything it sends is ignored."""

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame))

    async def chat_frame(self, event: dict[str, Any]) -> None:
        frame = event.get("frame") or {}
        turn_id = frame.get("turn_id")
        if frame.get("type") not in _TURN_ENDS or not isinstance(turn_id, str) or not turn_id:
            return
        try:
            recall = await sync_to_async(demo.turn_recall, thread_sensitive=False)(
                session_id=self.session_id, turn_id=turn_id
            )
        except Exception:  # the panel is a view of the chat: it must never take the socket down
            logger.warning("could not read the trace of turn %s", turn_id, exc_info=True)
            return
        if recall is not None:
            await self._send(recall)

    async def memory_mutation(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        if not isinstance(event, dict) or event.get("user_id") != self.owner:
            return
        try:
            # Off the event loop: a TTL change or a move names its memory by its text, read from Redis.
            frame = await sync_to_async(demo.live_change, thread_sensitive=False)(event)
        except Exception:  # one odd event must not close the panel
            logger.warning("could not show a mutation event in the demo panel", exc_info=True)
            return
        await self._send(frame)

    async def memory_decision(self, message: dict[str, Any]) -> None:
        decision = message.get("decision")
        if not isinstance(decision, dict) or decision.get("user_id") != self.owner:
            return
        try:
            frame = demo.decision_frame(decision)
        except Exception:
            logger.warning("could not show an extraction decision in the demo panel", exc_info=True)
            return
        await self._send(frame)
