"""Memories as the user reads them: "Your name is Priya", not "User's name is Priya".

Extracted facts are third-person statements about "User" (the rules extractor and the model
prompt both write them so). Shown to the user they read in the second person.
"""

from __future__ import annotations

import re

from memory.extraction.dates import spoken_epoch
from memory.types import Memory, MemoryType

_BE_HAVE = {
    "is": "are",
    "was": "were",
    "has": "have",
    "does": "do",
    "isn't": "aren't",
    "wasn't": "weren't",
    "hasn't": "haven't",
    "doesn't": "don't",
}
_ADVERB = (
    r"(?:also|really|just|still|usually|always|never|often|sometimes|now|only|actually|recently|currently|"
    r"mostly|rarely|no\s+longer|already|generally|regularly)"
)
_SUBJECT = re.compile(rf"\bUser(?P<adverbs>(?:\s+{_ADVERB})*)\s+(?P<verb>[A-Za-z']+)\b")
_POSSESSIVE = re.compile(r"\bUser's\b")
_OBJECT = re.compile(r"\bUser\b")
# The model extractor sometimes writes "The user ..." instead of "User ...": the same person.
# Not when a noun follows ("the user manual"): then "user" names a kind of thing, not the user.
_USER_NOUNS = (
    r"(?:manuals?|interfaces?|guides?|accounts?|experiences?|base|groups?|agreements?|ids?|data|stories|"
    r"story|research|testing|feedback|profiles?|settings|names?|reviews?|sessions?)"
)
_NOT_A_NOUN = rf"(?!-)(?!\s+{_USER_NOUNS}\b)"
_THE_USER = re.compile(rf"\b[Tt]he user\b{_NOT_A_NOUN}")
# "... and user lives in Lisbon": a lowercase "user" after a conjunction or a comma is the same
# person when a verb or "'s" follows (else it is a noun: "and user manuals", left alone).
_JOINED_USER = re.compile(
    rf"(?P<lead>\b(?:and|but|while|because|whereas|although|though|so|or)\s+|,\s*)user{_NOT_A_NOUN}"
    rf"(?P<rest>'s\b|(?P<adverbs>(?:\s+{_ADVERB})*)\s+(?P<verb>[A-Za-z']+)\b)"
)
_MODALS = frozenset({"can", "could", "will", "would", "should", "may", "might", "must", "shall"})
_IRREGULAR_PAST = frozenset(
    [
        "went",
        "got",
        "had",
        "made",
        "took",
        "said",
        "came",
        "left",
        "met",
        "bought",
        "began",
        "grew",
        "saw",
        "knew",
        "felt",
        "found",
        "gave",
        "kept",
        "lost",
        "ran",
        "sold",
        "spent",
        "told",
        "thought",
        "wrote",
        "became",
        "chose",
        "drove",
        "flew",
        "fell",
        "ate",
        "broke",
        "won",
    ]
)
# Words that end in s but are no third-person verbs ("User always ..." is handled by _ADVERB).
_NOT_VERBS = frozenset({"is", "was", "has", "does", "as", "its", "plus", "thus", "yes", "us"})


def _base_form(verb: str) -> str:
    """ "works" → "work", "studies" → "study", "watches" → "watch"; other words stay."""
    lower = verb.lower()
    if lower in _BE_HAVE:
        return _BE_HAVE[lower]
    if not lower.endswith("s") or lower.endswith("ss") or lower in _NOT_VERBS or len(lower) < 3:
        return verb
    if lower.endswith("ies") and len(lower) > 4:
        return verb[:-3] + "y"
    if lower.endswith(("ches", "shes", "xes", "zes", "oes", "sses")):
        return verb[:-2]
    return verb[:-1]


def _looks_like_verb(word: str) -> bool:
    """A third-person present verb ("lives", "is"), a modal or a regular past ("moved")."""
    lower = word.lower()
    if lower in _MODALS or lower in _IRREGULAR_PAST or (lower.endswith("ed") and len(lower) > 3):
        return True
    return _base_form(word) != word


def _joined_user(match: re.Match[str]) -> str:
    if match["verb"] is None or _looks_like_verb(match["verb"]):
        return f"{match['lead']}User{match['rest']}"
    return match[0]


def _subject(match: re.Match[str]) -> str:
    return f"you{match['adverbs']} {_base_form(match['verb'])}"


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def memory_sentence(memory: Memory) -> str:
    """One memory as the user reads it: a fact in the second person, a raw turn as a quote."""
    if memory.type == MemoryType.MESSAGE:
        when = spoken_epoch(memory.created_at, year=False)
        who = "I said" if memory.said_by == "assistant" else "You told me"
        return f"{who} on {when}: \u201c{memory.text}\u201d"
    text = second_person(memory.text)
    return text if text.endswith((".", "!", "?", "\u2026")) else text + "."


def second_person(text: str) -> str:
    """A third-person fact about "User" (or "the user") as said to the user; other text is unchanged."""
    text = _JOINED_USER.sub(_joined_user, _THE_USER.sub("User", text))
    if "User" not in text:
        return text
    text = _POSSESSIVE.sub("your", text)
    text = _SUBJECT.sub(_subject, text)
    text = _OBJECT.sub("you", text)
    return _capitalised(text)


# The user's memories page groups facts in plain words, by what the extractor said they are about.
GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("About you", frozenset({"identity"})),
    ("Health and food", frozenset({"health", "diet"})),
    ("Family and pets", frozenset({"family", "pets"})),
    ("Work and studies", frozenset({"work", "study"})),
    ("Where you live and come from", frozenset({"location"})),
    ("What you like", frozenset({"preferences", "favourites", "hobbies", "goals"})),
    ("Things you own", frozenset({"possessions"})),
    ("Dates and plans", frozenset({"events", "birthdays", "anniversaries"})),
)
INSTRUCTIONS = "How you want me to answer"
OTHER = "Other things you told me"
GROUP_ORDER = (*(name for name, _ in GROUPS), INSTRUCTIONS, OTHER)


def group_of(memory: Memory) -> str:
    """The heading a fact goes under on the user's page."""
    if memory.type == MemoryType.PROCEDURAL:
        return INSTRUCTIONS
    topics = set(memory.topics)
    for name, wanted in GROUPS:
        if topics & wanted:
            return name
    return "Dates and plans" if memory.type == MemoryType.EPISODIC else OTHER
