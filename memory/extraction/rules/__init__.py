"""The offline extractor: deterministic rules that turn what a user says about themselves into
candidate memories.

Used when no LLM is configured. It reads only the user's messages (the assistant's text is never a
source of facts about the user), tidies chat spelling, splits them into sentences and runs every
rule on each sentence: specific rules first (name, age, family and pets, work, places, health and
diet, likes and favourites, changes, dated events, birthdays), then a catch-all that keeps any other
first-person statement about a lasting part of the user's life in the user's own words. Questions,
hypotheticals ("if I lived in Paris") and negated or hedged clauses ("I don't think I like it")
yield nothing. Coverage is measured on the persona suites (bench/personas/).

Every candidate text is a short third-person statement about "User" that keeps the user's own words
for the object ("User lives in Porto"), with relative dates replaced by calendar dates.

Slots (`Candidate.slot`) name single-valued attributes, where a new value replaces the old one:
"name", "nickname", "age", "pronouns", "location", "job", "employer", "diet", "relationship",
"favourite:<what>", "switched:<what>", "preference:<old thing>" (a changed preference that names
what it replaces: "I've switched from coffee to tea") and "preference" (one that does not: "I now
prefer tea"). See memory/extraction/decide.py for how each is matched against stored memories.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from memory.extraction.rules import events, life, people, requests, statements
from memory.extraction.rules.found import Found, Rule
from memory.extraction.rules.text import (
    CI,
    MARKERS,
    QUESTION,
    Sentence,
    sentence,
    split_sentences,
    strip_end,
    third_person,
    with_subject,
)
from memory.extraction.types import Candidate, TurnMessage
from memory.types import MemoryType

__all__ = ["MAX_SENTENCE_CHARS", "RULES_VERSION", "extract_candidates", "third_person"]

RULES_VERSION = "rules-v2"
# Longer "sentences" are pasted text (code, logs, articles), not statements about the user; skipping
# them also keeps the rules' cost bounded.
MAX_SENTENCE_CHARS = 1000

_RULES: tuple[Rule, ...] = (
    people.identity,
    people.age,
    people.pronouns,
    people.family_and_pets,
    life.work,
    life.places,
    life.health_and_diet,
    life.traits,
    life.likes,
    life.preferences,
    life.changes,
    life.possessions,
    life.goals,
    events.yearly,
    events.events,
)
# "…, what's a good gift for ten years?": a statement before a question in one sentence.
_THEN_ASKS = re.compile(
    r",\s*(?:so\s+|but\s+|and\s+)?(?=(?:what|what's|how|where|which|who|any|can|could|would|should|do|does|is|are|"
    r"got|pls|please|thoughts|ideas|help|maybe|perhaps|is\s+it|is\s+there|are\s+there|tips|advice)\b)",
    CI,
)


def _found(s: Sentence) -> list[Found]:
    found = [f for rule in _RULES for f in rule(s)]
    taken = [(f.start, f.end) for f in found]
    return found + list(statements.statements(s, taken=taken))


def _statement_part(raw: str, text: str) -> str | None:
    """The statement to read in a sentence, or None for a question."""
    if not (raw.rstrip().endswith("?") or QUESTION.match(text)):
        return text
    # A question that opens with a statement ("my anniversary is on 4 October, any gift ideas?").
    parts = _THEN_ASKS.split(text, maxsplit=1)
    if len(parts) == 2 and not QUESTION.match(parts[0]) and len(parts[0].split()) >= 3:
        return strip_end(parts[0])
    return None


def _sentence_found(raw: str, reference: datetime) -> list[Found]:
    text = with_subject(strip_end(MARKERS.sub("", raw)))
    if not text or len(text) > MAX_SENTENCE_CHARS:
        return []
    forget = requests.FORGET.match(text)
    if forget:
        return requests.forget(sentence(forget["what"], reference))
    remember = requests.REMEMBER.match(text)
    if remember and (requests.PROCEDURE.match(remember["what"]) or not requests.ASKS.match(remember["what"])):
        return requests.remember(sentence(remember["what"], reference), _found)
    statement = _statement_part(raw, text)
    if statement is None:
        return []
    return _found(sentence(statement, reference))


def _union(first: Sequence[str], second: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def _add(found: dict[str, Candidate], candidate: Candidate, turn_id: str) -> None:
    """Add `candidate`, folding it into an earlier one with the same text (never two identical texts)."""
    key = f"{candidate.kind}:{candidate.text.casefold()}"
    candidate = replace(candidate, source_turn_ids=[turn_id] if turn_id else [])
    opposite = f"{'forget' if candidate.kind == 'remember' else 'remember'}:{candidate.text.casefold()}"
    if candidate.kind in ("remember", "forget"):
        found.pop(opposite, None)  # a later "forget" of the same text wins over an earlier "remember"
    earlier = found.pop(key, None)
    if earlier is None:
        found[key] = candidate
        return
    found[key] = replace(
        earlier,
        type=candidate.type if earlier.type == MemoryType.SEMANTIC else earlier.type,
        topics=_union(earlier.topics, candidate.topics),
        entities=_union(earlier.entities, candidate.entities),
        slot=earlier.slot or candidate.slot,
        event_date=earlier.event_date if earlier.event_date is not None else candidate.event_date,
        source_turn_ids=_union(earlier.source_turn_ids, candidate.source_turn_ids),
    )


def extract_candidates(messages: Sequence[TurnMessage]) -> list[Candidate]:
    """Candidates from what the user said about themselves, in the order they were said."""
    found: dict[str, Candidate] = {}
    for message in messages:
        if message.role != "user":
            continue  # the assistant's words are never evidence about the user
        reference = datetime.fromtimestamp(message.at, tz=UTC)
        for raw in split_sentences(message.content):
            for item in _sentence_found(raw, reference):
                _add(found, item.candidate, message.turn_id)
    return list(found.values())
