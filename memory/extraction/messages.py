"""Raw turns as `message` memories: what the user actually said stays searchable.

Extraction turns statements into facts, but no extractor catches everything; retrieval can always
fall back on the turn itself. Each message becomes one memory of its session (scope with the
session id), sourced to its turn, stored once however often the job runs (idempotency keys).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from memory.extraction.queue import QueuedTurn
from memory.extraction.rules.lexicon import topic_of
from memory.services import NewMemory, add_memories
from memory.types import Actor, ActorKind, Memory, MemoryType, Scope

MESSAGE_ACTOR = Actor(ActorKind.SYSTEM, "chat-turns")
# The role a message memory was said by, as a topic (the prompt and the pages say who said it).
ROLE_TOPIC_PREFIX = "said-by:"
# "hi!", "thanks", "ok cool": too short to be worth finding again.
MIN_WORDS = 3


def role_of(memory: Memory) -> str:
    """Who said a message memory ("user" or "assistant"); "" for other memories."""
    for topic in memory.topics:
        if topic.startswith(ROLE_TOPIC_PREFIX):
            return topic.removeprefix(ROLE_TOPIC_PREFIX)
    return ""


def _topic(text: str) -> list[str]:
    topic = topic_of(text, default="")
    return [topic] if topic else []


def _clipped(text: str) -> str:
    limit = settings.MEMORY_MAX_TEXT_CHARS
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def message_items(turns: Sequence[QueuedTurn], *, scope: Scope, session_id: str) -> list[NewMemory]:
    """One memory per message of the roles in MESSAGE_MEMORY_ROLES (empty text skipped)."""
    roles = set(settings.MESSAGE_MEMORY_ROLES)
    items: list[NewMemory] = []
    for turn in turns:
        for n, message in enumerate(turn.messages):
            if message.role not in roles or len(message.content.split()) < MIN_WORDS:
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
                    # Who said it, and what it is about (so topic-aware search finds raw turns too).
                    topics=[ROLE_TOPIC_PREFIX + message.role, *_topic(message.content)],
                    source=[turn_id],
                    created_at=message.at,
                    idempotency_key=f"message:{session_id}:{turn_id}:{n}",
                )
            )
    return items


def store_messages(turns: Sequence[QueuedTurn], *, scope: Scope, session_id: str) -> list[Memory]:
    """Store the turns' messages as `message` memories; a repeated call adds nothing new."""
    items = message_items(turns, scope=scope, session_id=session_id)
    if not items:
        return []
    return add_memories(items=items, actor=MESSAGE_ACTOR, reason="said in chat", publish=True)
