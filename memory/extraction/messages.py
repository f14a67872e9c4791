"""Raw turns as `message` memories: what the user actually said stays searchable.

Extraction turns statements into facts, but no extractor catches everything; retrieval can always
fall back on the turn itself. Each message becomes one memory of its session (scope with the
session id), sourced to its turn, stored once however often the job runs (idempotency keys).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from memory.access import Owner
from memory.extraction.queue import QueuedTurn
from memory.extraction.rules.requests import FORGET
from memory.extraction.rules.text import MARKERS, split_sentences, strip_end
from memory.selectors import memories_from_turns
from memory.services import NewMemory, add_memories, delete_memory
from memory.types import (
    ROLE_TOPIC_PREFIX,
    Actor,
    ActorKind,
    Lease,
    Memory,
    MemoryLocked,
    MemoryNotFound,
    MemoryType,
    Scope,
)

MESSAGE_ACTOR = Actor(ActorKind.SYSTEM, "chat-turns")
# "hi!", "thanks", "ok cool": too short to be worth finding again.
MIN_WORDS = 3


def _clipped(text: str) -> str:
    limit = settings.MEMORY_MAX_TEXT_CHARS
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _asks_to_forget(text: str) -> bool:
    """ "Please forget that I have diabetes": keeping these words would keep what they ask to drop."""
    return any(FORGET.match(strip_end(MARKERS.sub("", s))) for s in split_sentences(text))


def message_items(turns: Sequence[QueuedTurn], *, scope: Scope, session_id: str) -> list[NewMemory]:
    """One memory per message of the roles in MESSAGE_MEMORY_ROLES (empty text skipped)."""
    roles = set(settings.MESSAGE_MEMORY_ROLES)
    items: list[NewMemory] = []
    for turn in turns:
        for n, message in enumerate(turn.messages):
            if message.role not in roles or len(message.content.split()) < MIN_WORDS:
                continue
            if _asks_to_forget(message.content):
                continue
            turn_id = message.turn_id or turn.turn_id
            items.append(
                NewMemory(
                    text=_clipped(message.content),
                    scope=Scope(
                        user_id=scope.user_id,
                        agent_id=scope.agent_id,
                        namespace=scope.namespace,
                        session_id=session_id,
                    ),
                    type=MemoryType.MESSAGE,
                    topics=[ROLE_TOPIC_PREFIX + message.role],
                    source=[turn_id],
                    created_at=message.at,
                    idempotency_key=f"message:{session_id}:{turn_id}:{n}",
                )
            )
    return items


def forget_sources(
    fact: Memory, *, actor: Actor, reason: str, key: str = "", lease: Lease | None = None
) -> list[str]:
    """Delete (soft, restorable by staff for the grace period) the `message` memories a fact was
    learned from; returns their ids."""
    gone = []
    for said in memories_from_turns(user_id=fact.scope.user_id, turn_ids=fact.source, types=["message"]):
        try:
            delete_memory(
                memory_id=said.id,
                owner=Owner.user(fact.scope.user_id),
                actor=actor,
                reason=f"{reason} (the words it was learned from)",
                idempotency_key=f"{key}:source:{said.id}" if key else "",
                lease=lease,
            )
            gone.append(said.id)
        except (MemoryNotFound, MemoryLocked):  # gone already, or staff protect these words
            pass
    return gone


def store_messages(
    turns: Sequence[QueuedTurn], *, scope: Scope, session_id: str, lease: Lease | None = None
) -> list[Memory]:
    """Store the turns' messages as `message` memories; a repeated call adds nothing new."""
    items = message_items(turns, scope=scope, session_id=session_id)
    if not items:
        return []
    return add_memories(items=items, actor=MESSAGE_ACTOR, reason="said in chat", publish=True, lease=lease)
