"""What a turn recalls besides the plain search: the user's profile when they ask what Engram knows
about them, and the shaping of search hits into what the prompt shows.

A broad question ("what do you remember about me?") has no topic to search for: similarity against
it is noise, and a threshold-gated search answers "nothing relevant" while memories exist. Such a
question gets the profile instead: the user's facts ranked by importance (type, topic, whether an
event is still ahead, recency, how often a memory was used).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from memory.query import MemoryFilter
from memory.selectors import access_stats, list_memories
from memory.types import Memory, MemoryType, ScoreBreakdown, SearchHit

# Broad questions: "what do you remember/know about me", "what have I told you about myself", "give
# me a rundown of what you know about me", "who am I". A question about one topic ("what do you
# know about my sister") is a search.
_CHAT_SPELLING = {r"\bu\b": "you", r"\bur\b": "your", r"\bya\b": "you", r"\bw/": "with "}
_AFTERTHOUGHTS = re.compile(
    r"(?:,?\s*(?:so\s+far|until\s+now|till\s+now|up\s+to\s+now|at\s+this\s+point|already|now|then|exactly|"
    r"please|again|anyway|by\s+now|yet)|,\s*(?:dear|my\s+friend|friend|buddy|mate|pal|bot|engram|love|hun|bro))+$"
)
_ABOUT_ME_END = re.compile(
    r"\b(?:about|of|on)\s+(?:me|myself|my\s+life)(?:\s+and\s+my\s+(?:life|family|world|stuff))?$"
)
_KNOW_VERBS = re.compile(
    r"\b(?:know|knew|remember|recall|told|shared|share|said|learned|learnt|picked\s+up|found\s+out|gathered|"
    r"rundown|run\s+down|summary|summari[sz]e|recap|overview|saved|stored|noted|kept|have|got|info|information|"
    r"memories|facts|details)\b"
)
_WHOLE_QUESTIONS = re.compile(
    r"(?:(?:so|ok|okay|hey|hi|well|and|now|go\s+on)[,\s]+)*(?:who\s+am\s+i|describe\s+me|"
    r"(?:can\s+you\s+|could\s+you\s+|please\s+)?(?:tell|remind)\s+me\s+about\s+(?:myself|me)|"
    r"what(?:'s|\s+is)\s+in\s+your\s+memory|do\s+you\s+(?:remember|know)\s+me)"
)

PROFILE_LIMIT = 20
# Topics the rules extractor (and most model extractions) give facts, by how much they say about
# someone: who they are and what they must not eat matter more than a passing like.
_TOPIC_WEIGHT = {
    "identity": 1.0,
    "health": 0.95,
    "diet": 0.95,
    "family": 0.9,
    "work": 0.85,
    "location": 0.85,
    "pets": 0.8,
    "birthdays": 0.8,
    "remembered": 0.8,
    "hobbies": 0.7,
    "preferences": 0.65,
    "possessions": 0.6,
    "events": 0.5,
}
_DEFAULT_TOPIC_WEIGHT = 0.55
_RECENCY_HALF_LIFE_DAYS = 60.0


def is_profile_question(text: str) -> bool:
    """Whether the user asks what Engram knows about them as a whole."""
    if len(text) > 300:  # a broad question is short; a long message is about something
        return False
    question = " ".join(text.lower().replace("\u2019", "'").split()).rstrip("?.! ")
    for pattern, replacement in _CHAT_SPELLING.items():
        question = re.sub(pattern, replacement, question)
    question = _AFTERTHOUGHTS.sub("", question).strip(" ,")
    if _WHOLE_QUESTIONS.fullmatch(question):
        return True
    about_me = _ABOUT_ME_END.search(question)
    return bool(about_me and _KNOW_VERBS.search(question[: about_me.start()]))


def importance(memory: Memory, *, access_count: int, now: float) -> float:
    """How much a memory says about the user, in [0, 1]: its kind, its topic, whether it is still
    ahead (events), how recent it is and how often it was used."""
    if memory.type == MemoryType.EPISODIC:
        kind = 0.8 if memory.event_date and memory.event_date >= now - 86400 else 0.4
    elif memory.type == MemoryType.PROCEDURAL:
        kind = 0.7
    else:
        kind = 1.0
    topic = max((_TOPIC_WEIGHT.get(t, _DEFAULT_TOPIC_WEIGHT) for t in memory.topics), default=0.5)
    age_days = max(0.0, now - (memory.updated_at or memory.created_at)) / 86400
    recency = 0.5 ** (age_days / _RECENCY_HALF_LIFE_DAYS)
    use = min(1.0, math.log1p(access_count) / math.log1p(20))
    return round(0.4 * kind + 0.35 * topic + 0.15 * recency + 0.1 * use, 4)


def is_profile_material(memory: Memory) -> bool:
    """Facts, instructions and events; not raw turns or the rolling session summaries."""
    return memory.type != MemoryType.MESSAGE and "session-summary" not in memory.topics


def profile_hits(*, filter_: MemoryFilter, now: float, limit: int = PROFILE_LIMIT) -> list[SearchHit]:
    """The user's most important facts, best first (pinned ones are added by the prompt itself)."""
    facts = MemoryFilter.build(
        user_id=filter_.user_id,
        agent_id=filter_.agent_id or None,
        namespace=filter_.namespace or None,
        namespaces=filter_.namespaces or None,
        types=[str(t) for t in MemoryType if t != MemoryType.MESSAGE],
    )
    memories = [m for m in list_memories(filter=facts, limit=200).memories if is_profile_material(m)]
    stats = access_stats(memory_ids=[m.id for m in memories])
    scored = [(importance(m, access_count=stats.get(m.id, (0, 0.0))[0], now=now), m) for m in memories]
    scored.sort(key=lambda pair: (-pair[0], -pair[1].updated_at, pair[1].id))
    return [
        SearchHit(m, ScoreBreakdown(0.0, 0.0, 0.0, final=score, importance=score), reason="profile")
        for score, m in scored[:limit]
    ]


@dataclass(frozen=True)
class Arranged:
    """Search hits as the prompt shows them, and what was left out on the way (for the trace)."""

    hits: list[SearchHit]
    left_out: list[tuple[SearchHit, str]]


def arrange(hits: Sequence[SearchHit]) -> Arranged:
    """Show a fact and its source turn once: a `message` memory whose turn also gave one of the
    hits is replaced, at its own rank, by the best-scoring fact from that turn (the fact is the
    cleaner statement of it). (The raw turns of the conversation itself are not searched at all:
    see `MemoryFilter.without_messages_of_session`.)"""
    facts_by_turn: dict[str, list[SearchHit]] = {}
    for hit in hits:
        if hit.memory.type != MemoryType.MESSAGE:
            for turn_id in hit.memory.source:
                facts_by_turn.setdefault(turn_id, []).append(hit)
    shown: list[SearchHit] = []
    shown_ids: set[str] = set()
    left_out: list[tuple[SearchHit, str]] = []
    for hit in hits:
        memory = hit.memory
        if memory.id in shown_ids:
            continue
        if memory.type != MemoryType.MESSAGE:
            shown.append(hit)
            shown_ids.add(memory.id)
            continue
        turn_ids = set(memory.source)
        facts = [f for t in memory.source for f in facts_by_turn.get(t, []) if f.memory.id not in shown_ids]
        if facts or any(t in facts_by_turn for t in turn_ids):
            best = max(facts, key=lambda f: f.score.final, default=None)
            if best is not None:
                shown.append(best)
                shown_ids.add(best.memory.id)
                left_out.append((hit, f"said as a fact: {best.memory.id}"))
            else:
                left_out.append((hit, "its fact is shown"))
            continue
        shown.append(hit)
        shown_ids.add(memory.id)
    return Arranged(hits=shown, left_out=left_out)
