"""Reads behind the chat pages."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404

from chat.offline import memory_sentence
from chat.phrasing import GROUP_ORDER, group_of
from memory import working
from memory.prompt import spoken_date
from memory.query import MemoryFilter
from memory.selectors import MemoryPage, list_memories, memories_from_turns
from memory.types import InvalidInput, Memory, MemoryType


def owned_session(*, user_id: str, session_id: str) -> working.Session:
    """The session if it exists and belongs to this user; 404 otherwise (never a hint it exists)."""
    try:
        session = working.get_session(session_id=session_id)
    except InvalidInput as exc:
        raise Http404("no such chat") from exc
    if session is None or session.user_id != user_id:
        raise Http404("no such chat")
    return session


def sessions_for(*, user_id: str) -> list[working.Session]:
    return working.list_sessions(user_id=user_id)


def own_memories(*, user_id: str, offset: int = 0, limit: int = 100) -> MemoryPage:
    return list_memories(filter=MemoryFilter.build(user_id=user_id), offset=offset, limit=limit)


@dataclass(frozen=True)
class Said:
    """A raw turn (a `message` memory) and the day it was said, in words."""

    memory: Memory
    on: str


@dataclass(frozen=True)
class OwnFact:
    memory: Memory
    sentence: str  # in the second person
    said: Said | None  # the message memory it was learned from, while it is kept


@dataclass(frozen=True)
class OwnMemories:
    groups: list[tuple[str, list[OwnFact]]]  # plain-words headings, in a fixed order
    said: list[Said]  # what the user said, newest first (raw turns, kept MESSAGE_TTL_SECONDS)
    total: int


def _said(memory: Memory) -> Said:
    return Said(memory, spoken_date(memory.created_at))


def own_memories_grouped(*, user_id: str, limit: int = 300) -> OwnMemories:
    """The user's memories as their page shows them: facts by heading, each with the turn it came
    from, and the raw turns apart."""
    facts_filter = MemoryFilter.build(
        user_id=user_id, types=[t for t in MemoryType if t != MemoryType.MESSAGE]
    )
    facts = list_memories(filter=facts_filter, limit=limit).memories
    said = list_memories(filter=MemoryFilter.build(user_id=user_id, types=["message"]), limit=limit).memories
    by_turn = {turn: m for m in said for turn in m.source}
    missing = [t for f in facts for t in f.source if t not in by_turn]
    if missing:
        for m in memories_from_turns(user_id=user_id, turn_ids=missing[:50], types=["message"]):
            by_turn.update({turn: m for turn in m.source})
    grouped: dict[str, list[OwnFact]] = {name: [] for name in GROUP_ORDER}
    for fact in facts:
        source = next((by_turn[t] for t in fact.source if t in by_turn), None)
        grouped[group_of(fact)].append(
            OwnFact(fact, memory_sentence(fact), _said(source) if source else None)
        )
    groups = [(name, items) for name, items in grouped.items() if items]
    return OwnMemories(groups=groups, said=[_said(m) for m in said], total=len(facts) + len(said))
