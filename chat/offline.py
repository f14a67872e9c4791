"""The offline reply: with no model configured, answer from memory and say so.

It reads what the turn's retrieval chose (the same memories a model would get, with their scores)
and the user's message (what the rules extractor will learn from it in the background), and
answers in plain words: the user's facts in the second person, a raw turn as "you told me on …".
That the reply is offline is said once, by the chat page's banner (chat.html), not in every reply.
What it says it will remember is what the extraction's own decision step would apply: a change
staff locked (or a forget of a pinned memory) is said to be refused, never announced as learned.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async

from chat.phrasing import memory_sentence, second_person
from core.llm import Completion, StreamEvent
from memory.extraction.decide import decide
from memory.extraction.rules import extract_candidates
from memory.extraction.rules.text import only_asks
from memory.extraction.types import CandidateKind, Op, TurnMessage
from memory.prompt import BuiltPrompt
from memory.recall import is_profile_question
from memory.types import MemoryType, Scope, SearchHit

# A question usually has one answer: show the few best memories, not all that passed the cut.
MAX_RECALLED = 3
# Of those, only the ones at least half as good as the best (persona dev suite: 0.5 answers as many
# questions as no cut at all, 0.6 fewer; bench/results/personas.json).
SHOWN_SHARE_OF_BEST = 0.5
MAX_PROFILE_LINES = 20
# What a refused change (Op.refused) is called in the reply.
REFUSED_HEADINGS = {
    "update": "I can't save this, because support has locked what I know about it:",
    "delete": "I can't forget this, because it is kept on purpose (locked or pinned by support):",
}


def _told(hits: list[SearchHit]) -> list[SearchHit]:
    """The hits worth saying back: not the user's own questions (a `message` memory that only asks
    was never told; one that tells something and then asks is kept), and each text once (the same
    words kept twice read as one)."""
    shown: list[SearchHit] = []
    seen: set[str] = set()
    for hit in hits:
        memory = hit.memory
        if memory.type == MemoryType.MESSAGE and (only_asks(memory.text) or is_profile_question(memory.text)):
            continue
        key = _normalised(memory.text)
        if key in seen:
            continue
        seen.add(key)
        shown.append(hit)
    return shown


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", second_person(text).casefold()).split())


def _relevant(hits: list[SearchHit], *, shown_share_of_best: float) -> list[SearchHit]:
    hits = _told(hits)
    pinned = [h for h in hits if h.reason == "pinned"]
    matched = [h for h in hits if h.reason == "match"]
    if not matched:
        return pinned[:MAX_RECALLED]
    best = matched[0].score.final
    close = [h for h in matched if h.score.final >= shown_share_of_best * best][:MAX_RECALLED]
    return close + [h for h in pinned if h not in close][: max(0, MAX_RECALLED - len(close))]


def _bullets(hits: list[SearchHit]) -> str:
    return "\n".join(f"• {memory_sentence(h.memory)}" for h in hits)


def _planned(message: str, scope: Scope) -> list[Op]:
    """What extraction will do with this message, decided as it will decide (read-only here)."""
    candidates = extract_candidates([TurnMessage("user", message, time.time())]) if message else []
    return decide(candidates, scope=scope, llm=None) if candidates else []


def compose_reply(
    built: BuiltPrompt, message: str, *, scope: Scope, shown_share_of_best: float = SHOWN_SHARE_OF_BEST
) -> str:
    parts: list[str] = []
    ops = _planned(message, scope)
    known = {h.memory.text.casefold() for h in built.memories}
    learned = [
        op.candidate.text
        for op in ops
        if op.candidate.kind == CandidateKind.REMEMBER
        and op.action in ("add", "update")
        and op.candidate.text.casefold() not in known
    ]
    refused = [op for op in ops if op.refused]
    forgotten = [
        op.candidate.text for op in ops if op.candidate.kind == CandidateKind.FORGET and not op.refused
    ]
    if built.profile:
        facts = _told([h for h in built.memories if h.reason in {"profile", "pinned"}])[:MAX_PROFILE_LINES]
        if facts:
            parts.append("Here is what I remember about you:\n" + _bullets(facts))
        elif not learned:
            parts.append("I don't know anything about you yet. Tell me about yourself and I'll remember it.")
    else:
        recalled = _relevant(built.memories, shown_share_of_best=shown_share_of_best)
        if recalled:
            parts.append("From what I remember:\n" + _bullets(recalled))
        elif not learned and not forgotten and not refused:
            parts.append("I don't remember anything about that yet.")
    if learned:
        parts.append(
            "I'll remember this (saved in the background):\n"
            + "\n".join(f"• {second_person(t)}" for t in learned)
        )
    if forgotten:
        parts.append("I will forget: " + "; ".join(second_person(t) for t in forgotten))
    for action, heading in REFUSED_HEADINGS.items():
        texts = [op.candidate.text for op in refused if op.refused == action]
        if texts:
            parts.append(heading + "\n" + "\n".join(f"• {second_person(t)}" for t in texts))
    return "\n\n".join(parts)


async def stream_reply(
    built: BuiltPrompt, message: str, *, scope: Scope, shown_share_of_best: float = SHOWN_SHARE_OF_BEST
) -> AsyncIterator[StreamEvent]:
    """The reply as the chat streams a model's: word by word, then the completion."""
    # The rules extractor reads the message: off the event loop, which serves every socket.
    text = await sync_to_async(compose_reply, thread_sensitive=False)(
        built, message, scope=scope, shown_share_of_best=shown_share_of_best
    )
    words = text.split(" ")
    for n, word in enumerate(words):
        yield StreamEvent(kind="text", text=word if n == len(words) - 1 else word + " ")
    yield StreamEvent(kind="done", completion=Completion(text=text, model="offline"))
