"""Reads behind the chat pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from django.http import Http404

from chat.phrasing import GROUP_ORDER, group_of, memory_sentence
from memory import working
from memory.access import Owner
from memory.extraction.dates import spoken_epoch
from memory.query import MemoryFilter
from memory.selectors import (
    deleted_memories,
    get_memory,
    last_deletion,
    last_deletions,
    list_memories,
    memories_from_turns,
)
from memory.types import ActorKind, HistoryEvent, InvalidInput, Memory, MemoryNotFound, MemoryType

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


SESSIONS_PER_PAGE = 20


@dataclass(frozen=True)
class SessionPage:
    sessions: list[working.Session]
    number: int  # 1-based; a page past the end is the last page
    pages: int
    total: int

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.pages else None


def sessions_page(*, user_id: str, page: int = 1, per_page: int = SESSIONS_PER_PAGE) -> SessionPage:
    """One page of the user's chats, newest first (only that page's sessions are read)."""
    ids = working.session_ids_for_user(user_id=user_id)
    pages = max(1, -(-len(ids) // per_page))
    number = min(max(1, page), pages)
    chosen = ids[(number - 1) * per_page : number * per_page]
    sessions = [s for s in (working.get_session(session_id=i) for i in chosen) if s is not None]
    return SessionPage(sessions=sessions, number=number, pages=pages, total=len(ids))


NO_SESSIONS = SessionPage(sessions=[], number=1, pages=1, total=0)


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
    highlight: str = ""  # the id of the memory a link asked for, when it is on the page


# What a visitor who never started a chat has.
NO_MEMORIES = OwnMemories(groups=[], said=[], total=0, shown=0)


def own_memory(*, user_id: str, memory_id: str) -> Memory | None:
    """One live memory of this user; None for anything else (a bad id, another user's, deleted)."""
    try:
        return get_memory(memory_id=memory_id, owner=Owner.user(user_id), include_deleted=False)
    # An id no memory can have, or one naming another kind of key.
    except (MemoryNotFound, InvalidInput, redis.ResponseError):
        return None


@dataclass(frozen=True)
class Forgotten:
    """A memory the user forgot, for the page's Undo."""

    memory: Memory
    sentence: str
    sources: list[str]  # the words forgotten with it (restored with it)
    on: str = ""  # the day it was forgotten, in words


def _made_by(user_id: str, deletion: HistoryEvent | None) -> bool:
    """Whether this delete was made by this user on their own pages."""
    return deletion is not None and deletion.actor.kind == ActorKind.USER and deletion.actor.id == user_id


# How many of the newest deletions the "Recently forgotten" list looks at, and shows.
TRASH_SCAN = 100
RECENTLY_FORGOTTEN = 20


def recently_forgotten(*, user_id: str, limit: int = RECENTLY_FORGOTTEN) -> list[Forgotten]:
    """What the user forgot themselves and can still undo, newest first. The words a fact was
    learned from are not listed apart: its Undo brings them back with it."""
    trash = deleted_memories(user_id=user_id, limit=TRASH_SCAN)
    deletions = last_deletions(memory_ids=[m.id for m in trash])
    mine = [(m, d) for m in trash if (d := deletions[m.id]) is not None and _made_by(user_id, d)]
    said = {turn: m.id for m, _ in mine if m.type == MemoryType.MESSAGE for turn in m.source}
    listed: list[Forgotten] = []
    taken: set[str] = set()
    for memory, deletion in mine:
        if memory.type == MemoryType.MESSAGE:
            continue
        sources = sorted({said[t] for t in memory.source if t in said})
        taken.update(sources)
        listed.append(Forgotten(memory, memory_sentence(memory), sources, on=spoken_epoch(deletion.at)))
    words = [
        Forgotten(m, memory_sentence(m), [], on=spoken_epoch(d.at))
        for m, d in mine
        if m.type == MemoryType.MESSAGE and m.id not in taken
    ]
    order = {m.id: n for n, (m, _) in enumerate(mine)}
    return sorted([*listed, *words], key=lambda f: order[f.memory.id])[:limit]


@dataclass(frozen=True)
class MissingLink:
    """A "Memories used" link to a memory that is not on the page any more."""

    forgotten_on: str  # the day it was forgotten; "" when it no longer exists (or is not theirs)
    undo: Forgotten | None  # when the user forgot it themselves and can still undo it


def missing_link(*, user_id: str, memory_id: str) -> MissingLink:
    """What the memories page says about a linked memory it cannot show. Another user's memory
    reads as one that does not exist."""
    gone = MissingLink(forgotten_on="", undo=None)
    try:
        memory = get_memory(memory_id=memory_id, owner=Owner.user(user_id), include_deleted=True)
    except (MemoryNotFound, InvalidInput, redis.ResponseError):
        return gone
    if not memory.deleted:
        return gone
    deletion = last_deletion(memory_id=memory.id)
    on = spoken_epoch(deletion.at) if deletion else ""
    if not on:
        return gone
    if not _made_by(user_id, deletion):
        return MissingLink(forgotten_on=on, undo=None)
    undo = next((f for f in recently_forgotten(user_id=user_id) if f.memory.id == memory.id), None)
    return MissingLink(forgotten_on=on, undo=undo or Forgotten(memory, memory_sentence(memory), [], on=on))


def forgotten_memory(*, user_id: str, undo: dict[str, Any]) -> Forgotten | None:
    """What the forget view noted (ids only), if that memory is this user's and still in the trash."""
    try:
        memory = get_memory(
            memory_id=str(undo.get("id", "")), owner=Owner.user(user_id), include_deleted=True
        )
    except (MemoryNotFound, InvalidInput, redis.ResponseError):
        return None
    if not memory.deleted:
        return None
    sources = [str(s) for s in undo.get("sources") or []]
    return Forgotten(memory=memory, sentence=memory_sentence(memory), sources=sources)


def _said(memory: Memory) -> Said:
    return Said(memory, spoken_epoch(memory.created_at))


def own_memories_grouped(*, user_id: str, limit: int = 300, highlight: str = "") -> OwnMemories:
    """The user's memories as their page shows them: facts by heading, each with the turn it came
    from, and what the user said apart (the newest `limit` of each). The memory named by
    `highlight` (a link from a chat's "Memories used") is listed even when older than those."""
    facts_page = list_memories(filter=MemoryFilter.build(user_id=user_id, types=FACT_TYPES), limit=limit)
    said_page = list_memories(filter=MemoryFilter.build(user_id=user_id, types=["message"]), limit=limit)
    fact_list = list(facts_page.memories)
    # The user's own words: the assistant's turns (kept when MESSAGE_MEMORY_ROLES says so) are not
    # "what you said", and a turn's source is the user's message of it.
    said = [m for m in said_page.memories if m.said_by in ("user", "")]
    linked = own_memory(user_id=user_id, memory_id=highlight) if highlight else None
    if linked is not None and all(m.id != linked.id for m in [*fact_list, *said]):
        (said if linked.type == MemoryType.MESSAGE else fact_list).append(linked)
    by_turn = {turn: m for m in said if m.said_by in ("user", "") for turn in m.source}
    missing = [t for f in fact_list for t in f.source if t not in by_turn]
    elsewhere = {
        turn: m
        for m in memories_from_turns(user_id=user_id, turn_ids=missing[:50], types=["message"])
        if m.said_by in ("user", "")
        for turn in m.source
    }
    grouped: dict[str, list[OwnFact]] = {name: [] for name in GROUP_ORDER}
    for fact in fact_list:
        shown = next((by_turn[t] for t in fact.source if t in by_turn), None)
        source = shown or next((elsewhere[t] for t in fact.source if t in elsewhere), None)
        grouped[group_of(fact)].append(
            OwnFact(fact, memory_sentence(fact), _said(source) if source else None, linked=shown is not None)
        )
    return OwnMemories(
        groups=[(name, items) for name, items in grouped.items() if items],
        said=[_said(m) for m in said],
        total=facts_page.total + said_page.total,
        shown=len(fact_list) + len(said),
        highlight=linked.id if linked is not None else "",
    )
