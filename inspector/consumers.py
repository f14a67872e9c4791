"""The inspector's live feed: every memory mutation, as a rendered HTML fragment, pushed to open
inspector pages over a WebSocket.

memory.events publishes `{"type": "memory.mutation", "event": <HistoryEvent dict>}` to the
`memory-feed` group after each write. This consumer renders the event with the same template the
pages use (autoescaped), so the browser only inserts server-made HTML and never builds markup from
memory text. `?user_id=` or `?memory_id=` narrows the feed to one user or one memory.

Only staff with the view permission may connect; others are accepted and closed with 4403, or 4401
when not signed in (so the page can tell a refusal from a network failure). The origin is checked
by core.websockets.OriginCheck (scheme, host and port); signing out closes the socket with 4401.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from core.websockets import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, ProductSocket
from inspector.permissions import can_view
from inspector.selectors import feed_entries
from memory.events import FEED_GROUP

logger = logging.getLogger(__name__)

# The route is in config/routing.py (WebSocket routes cannot be reversed like Django URLs).
FEED_PATH = "/ws/inspector/feed/"
FEED_ENTRY_TEMPLATE = "inspector/_feed_entry.html"


def render_feed_entry(event: dict[str, Any]) -> str:
    """The feed line of one event; reads the memory's text when the event carries none (Redis)."""
    return render_to_string(FEED_ENTRY_TEMPLATE, {"entry": feed_entries([event])[0]})


class InspectorFeedConsumer(ProductSocket):
    user_filter = ""
    memory_filter = ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        # can_view reads permissions from the database: not from the event loop.
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)  # the page says "signed out", not "not allowed"
            return
        if not await database_sync_to_async(can_view)(user):
            await self.refuse(CLOSE_FORBIDDEN)
            return
        params = parse_qs(self.scope.get("query_string", b"").decode("utf-8", "replace"))
        self.user_filter = params.get("user_id", [""])[0]
        self.memory_filter = params.get("memory_id", [""])[0]
        # Through a Redis outage the socket stays open and joins again (core.websockets.ProductSocket).
        await self.join_group(FEED_GROUP)
        await self.join_login_group()
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The feed is one-way; anything the page sends is ignored."""

    def wants(self, event: dict[str, Any]) -> bool:
        if self.user_filter and event.get("user_id") != self.user_filter:
            return False
        return not (self.memory_filter and event.get("memory_id") != self.memory_filter)

    async def memory_mutation(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        if not isinstance(event, dict) or not self.wants(event):
            return
        try:
            # Off the event loop: a TTL change or a move names its memory by its text, read from Redis.
            html = await sync_to_async(render_feed_entry)(event)
        except Exception:  # one odd event must not close every open inspector page
            logger.warning("could not render a live feed entry", exc_info=True)
            return
        await self.send(text_data=html)
