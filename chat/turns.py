"""One chat turn: save the user's message, assemble the prompt from memory, stream the model's reply
(running memory and business tools when it asks), save the reply, queue the turn for extraction.

Frames go to the session's channel group, so every open tab sees the same stream, and the turn
runs on even when the socket that started it drops. The tabs in the turn's own process get them
directly, other processes' tabs through the channel layer (core.channel_layer.deliver).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.urls import reverse
from ulid import ULID

from chat import offline, services
from chat.phrasing import memory_sentence
from chat.tools import TOOL_SPECS, ToolContext, run_tool
from core.llm import LLMError, get_llm
from core.text import clean_text
from memory import working
from memory.extraction.queue import enqueue_turn
from memory.extraction.types import TurnMessage
from memory.hits import hit_as_dict, ranking
from memory.prompt import abuild_prompt
from memory.search_params import SearchParams
from memory.types import MemoryNotFound, Scope, SearchHit

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
# Tokens arriving within this window share one frame (about 20 frames a second at most).
DELTA_INTERVAL_SECONDS = 0.05


CHAT_DELETED = "This chat was deleted (in another tab or window), so your message was not saved."
CHAT_DELETED_MIDWAY = "This chat was deleted while Engram was answering; nothing of this turn was kept."


class ChatGone(Exception):
    """The chat was deleted (or expired) before or while its turn ran; the message says what was kept."""


def group_name(session_id: str) -> str:
    return f"chat-{session_id}"


def memory_link(memory_id: str, *, staff: bool) -> str:
    if staff:
        return reverse("inspector:memory", args=[memory_id])
    # The query names the memory so the page lists and marks it even when it is not among the
    # newest it shows; the fragment scrolls to it.
    return reverse("chat:my_memories") + f"?memory={memory_id}#memory-{memory_id}"


def _display_order(hit: SearchHit) -> tuple[bool, float]:
    # Pinned memories are always in, unscored: first; then the number that ranked each, highest first.
    return (hit.reason != "pinned", -(ranking(hit)["rank"] or 0.0))


def memories_used(hits: list[SearchHit], *, staff: bool) -> list[dict[str, Any]]:
    """What the reply's "Memories used" lists, pinned first then best ranked first: staff get the
    stored text, the scores and which number ranks each (`ranked_by` "score", "profile" or
    "pinned", `rank`, `why` in words), a user the memory as their memories page phrases it, without
    scores (they explain nothing to them)."""
    hits = sorted(hits, key=_display_order)
    if not staff:
        return [
            {
                **hit_as_dict(hit, view="user", text=memory_sentence(hit.memory)),
                "link": memory_link(hit.memory.id, staff=False),
            }
            for hit in hits
        ]
    return [
        {**hit_as_dict(hit, view="staff"), "link": memory_link(hit.memory.id, staff=True)} for hit in hits
    ]


class DeltaBuffer:
    """Coalesces streamed tokens into one frame per DELTA_INTERVAL_SECONDS.

    Each frame is a write to every tab's socket (and a channel-layer message when a tab is on another
    process): one per token was the bottleneck under load. The first token still goes out at once
    for time-to-first-token.
    """

    def __init__(self, *, turn_id: str, send: Send) -> None:
        self.turn_id = turn_id
        self.send = send
        self.pending: list[str] = []
        self.last_sent = 0.0

    async def add(self, text: str) -> None:
        self.pending.append(text)
        if time.monotonic() - self.last_sent >= DELTA_INTERVAL_SECONDS:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            text, self.pending = "".join(self.pending), []
            await self.send({"type": "delta", "turn_id": self.turn_id, "text": text})
            self.last_sent = time.monotonic()


async def run_turn(
    *,
    user_id: str,
    session_id: str,
    text: str,
    client_id: str,
    staff: bool,
    send: Send,
    params: SearchParams | None = None,
    shown_share_of_best: float = offline.SHOWN_SHARE_OF_BEST,
) -> str | None:
    """Run a turn to the end; returns the reply text (None when the model failed). `params` and
    `shown_share_of_best` are for experiments (bench/tuning.py); the chat uses the defaults."""
    started = time.time()
    try:
        turn_id, title = await sync_to_async(_save_user_message, thread_sensitive=False)(
            session_id=session_id, text=text, client_id=client_id, at=started
        )
    except MemoryNotFound as exc:
        raise ChatGone(CHAT_DELETED) from exc
    started_frame = {"type": "turn_started", "turn_id": turn_id, "client_id": client_id, "text": text}
    await send({**started_frame, "title": title} if title else started_frame)
    built = await abuild_prompt(
        user_id=user_id, session_id=session_id, message=text, turn_id=turn_id, params=params
    )
    used = memories_used(built.memories, staff=staff)
    llm = get_llm()
    messages: list[dict[str, Any]] = list(built.messages)
    ctx = ToolContext(user_id=user_id, session_id=session_id, model=llm.model)
    reply_parts: list[str] = []
    deltas = DeltaBuffer(turn_id=turn_id, send=send)
    try:
        for _ in range(settings.CHAT_MAX_TOOL_ROUNDS + 1):
            completion = None
            # Offline, the chat answers from the memories it retrieved (chat/offline.py).
            stream = (
                offline.stream_reply(
                    built, text, scope=Scope(user_id=user_id), shown_share_of_best=shown_share_of_best
                )
                if llm.mode == "offline"
                else llm.stream(messages, tools=TOOL_SPECS)
            )
            async for event in stream:
                if event.kind == "text":
                    reply_parts.append(event.text)
                    await deltas.add(event.text)
                else:
                    completion = event.completion
            await deltas.flush()
            if completion is None or not completion.tool_calls:
                break
            messages.append(
                {
                    "role": "assistant",
                    "content": completion.text or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in completion.tool_calls
                    ],
                }
            )
            for call in completion.tool_calls:
                outcome = await sync_to_async(run_tool, thread_sensitive=False)(
                    ctx, name=call.name, raw_arguments=call.arguments
                )
                await send({"type": "tool", "turn_id": turn_id, "name": call.name, "cached": outcome.cached})
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": json.dumps(outcome.result)}
                )
    except LLMError as exc:
        logger.warning("turn %s in session %s failed: %s", turn_id, session_id, exc)
        reason = "did not answer in time" if exc.kind == "timeout" else "could not be reached or failed"
        await send(
            {
                "type": "error",
                "turn_id": turn_id,
                "code": f"llm_{exc.kind}",
                "message": f"The language model {reason}. Your message is saved; send it again to retry.",
            }
        )
        return None
    reply = "".join(reply_parts).strip() or "(no answer)"
    try:
        await sync_to_async(_finish_turn, thread_sensitive=False)(
            user_id=user_id,
            session_id=session_id,
            turn_id=turn_id,
            text=text,
            reply=reply,
            at=started,
            used=used,
        )
    except MemoryNotFound as exc:
        raise ChatGone(CHAT_DELETED_MIDWAY) from exc
    await send(
        {
            "type": "done",
            "turn_id": turn_id,
            "text": reply,
            "memories": used,
            "offline": llm.mode == "offline",
        }
    )
    return reply


def _save_user_message(*, session_id: str, text: str, client_id: str, at: float) -> tuple[str, str]:
    """Save the user's message; returns the turn id and the chat's new title ("" if unchanged; the
    first message names the chat). A message sent again after the model failed
    (the last message of the chat, unanswered and the same words) is that turn again: it is not
    saved twice, so neither the history nor the model sees it twice."""
    last = working.get_messages(session_id=session_id, last=1)
    if (
        last
        and last[0].role == "user"
        and last[0].content == clean_text(text)
        and last[0].meta.get("turn_id")
    ):
        return str(last[0].meta["turn_id"]), ""
    turn_id = str(ULID())
    working.append_message(
        session_id=session_id,
        role="user",
        content=text,
        at=at,
        meta={"turn_id": turn_id, "client_id": client_id},
    )
    title = services.title_after_first_message(session_id=session_id, text=text) if not last else ""
    return turn_id, title


def _finish_turn(
    *,
    user_id: str,
    session_id: str,
    turn_id: str,
    text: str,
    reply: str,
    at: float,
    used: list[dict[str, Any]],
) -> None:
    working.append_message(
        session_id=session_id, role="assistant", content=reply, meta={"turn_id": turn_id, "memories": used}
    )
    enqueue_turn(
        user_id=user_id,
        session_id=session_id,
        turn_id=turn_id,
        messages=[
            TurnMessage("user", text, at, turn_id),
            TurnMessage("assistant", reply, time.time(), turn_id),
        ],
    )
