"""Reads behind the chat pages."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404

from chat.phrasing import GROUP_ORDER, group_of, memory_sentence
from memory import working
from memory.extraction.dates import spoken_epoch
from memory.query import MemoryFilter
from memory.selectors import list_memories, memories_from_turns
from memory.types import InvalidInput, Memory, MemoryType

FACT_TYPES = [t for t in MemoryType if t != MemoryType.MESSAGE]


def owned_session(*, user_id: str, session_id: str) -> working.Session:
    """The session if it exists and belongs to this user; 404 otherwise (never a hint it exists)."""
    try:
        session = working.get_session(session_id=session_id)
    except InvalidInput as exc:
        raise Http404("no such chat") from exc
    if session is None or session.user_id != user_id:
        raise Http404("no such chat")
    return session


def message_saved(*, session_id: str, client_id: str, within_last: int = 20) -> bool:
    """Is the user's message with this client id in the chat's recent history?"""
    recent = working.get_messages(session_id=session_id, last=within_last)
    return any(m.role == "user" and m.meta.get("client_id") == client_id for m in recent)


def sessions_for(*, user_id: str) -> list[working.Session]:
    return working.list_sessions(user_id=user_id)


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
    linked: bool = False  # that message is on the page too (the link can jump to it)


@dataclass(frozen=True)
class OwnMemories:
    groups: list[tuple[str, list[OwnFact]]]  # plain-words headings, in a fixed order
    said: list[Said]  # what the user said, newest first (raw turns, kept MESSAGE_TTL_SECONDS)
    total: int  # every memory of the user
    shown: int  # how many of them the page lists (the newest of each kind)


# What a visitor who never started a chat has.
NO_MEMORIES = OwnMemories(groups=[], said=[], total=0, shown=0)


def _said(memory: Memory) -> Said:
    return Said(memory, spoken_epoch(memory.created_at))


def own_memories_grouped(*, user_id: str, limit: int = 300) -> OwnMemories:
    """The user's memories as their page shows them: facts by heading, each with the turn it came
    from, and what the user said apart (the newest `limit` of each)."""
    facts_page = list_memories(filter=MemoryFilter.build(user_id=user_id, types=FACT_TYPES), limit=limit)
    said_page = list_memories(filter=MemoryFilter.build(user_id=user_id, types=["message"]), limit=limit)
    # The user's own words: the assistant's turns (kept when MESSAGE_MEMORY_ROLES says so) are not
    # "what you said", and a turn's source is the user's message of it.
    said = [m for m in said_page.memories if m.said_by in ("user", "")]
    by_turn = {turn: m for m in said for turn in m.source}
    missing = [t for f in facts_page.memories for t in f.source if t not in by_turn]
    elsewhere = {
        turn: m
        for m in memories_from_turns(user_id=user_id, turn_ids=missing[:50], types=["message"])
        if m.said_by in ("user", "")
        for turn in m.source
    }
    grouped: dict[str, list[OwnFact]] = {name: [] for name in GROUP_ORDER}
    for fact in facts_page.memories:
        shown = next((by_turn[t] for t in fact.source if t in by_turn), None)
        source = shown or next((elsewhere[t] for t in fact.source if t in elsewhere), None)
        grouped[group_of(fact)].append(
            OwnFact(fact, memory_sentence(fact), _said(source) if source else None, linked=shown is not None)
        )
    return OwnMemories(
        groups=[(name, items) for name, items in grouped.items() if items],
        said=[_said(m) for m in said],
        total=facts_page.total + said_page.total,
        shown=len(facts_page.memories) + len(said),
    )
