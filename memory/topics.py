"""The areas of life a question is about, so search can favour memories filed under them.

Extraction files every fact under topics from one small vocabulary (`TOPICS`: the rules extractor
uses it, the model is asked to). A question says which area it is about in other words than the
fact ("what do I do for a living?" → work, "what's my pet called?" → pets, "is there anything I
can't eat?" → diet and health): search gives a memory of that area a bonus (setting
RETRIEVAL_TOPIC_WEIGHT), shown as its own part of the score breakdown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from memory.types import ROLE_TOPIC_PREFIX

# Topics the engine files for itself, not areas of life: `slot:<name>` marks the one memory holding
# a single-valued fact (the extractor updates it in place: "lives in Lisbon" -> "lives in Porto"),
# `said-by:<role>` who said a raw turn. Staff never type them and an edit must keep them.
SLOT_TOPIC_PREFIX = "slot:"
INTERNAL_TOPIC_PREFIXES = (SLOT_TOPIC_PREFIX, ROLE_TOPIC_PREFIX)


def typed_topic(raw: str) -> str:
    """A topic as a person typed it, the way it is stored: a leading '#' (topics are drawn as
    "#travel") and case do not make another topic."""
    return raw.strip().lstrip("#").strip().lower()


def is_internal_topic(topic: str) -> bool:
    return typed_topic(topic).startswith(INTERNAL_TOPIC_PREFIXES)


def visible_topics(topics: Iterable[str]) -> list[str]:
    """The topics a person files and edits (the areas of life), without the engine's markers."""
    return [t for t in topics if not is_internal_topic(t)]


def internal_topics(topics: Iterable[str]) -> list[str]:
    return [t for t in topics if is_internal_topic(t)]


def with_internal_topics(edited: Iterable[str], *, current: Iterable[str]) -> list[str]:
    """Topics as edited, plus the internal markers of the current memory: a form that only shows
    visible topics must not drop the slot the extractor finds the memory by. Markers typed into
    the form are not taken (they would point the extractor at the wrong memory)."""
    return [*visible_topics(edited), *internal_topics(current)]


TOPICS = (
    "identity",
    "health",
    "diet",
    "family",
    "pets",
    "work",
    "study",
    "location",
    "preferences",
    "favourites",
    "hobbies",
    "possessions",
    "events",
    "birthdays",
    "anniversaries",
    "goals",
)

# Words and phrases of questions, by the topics they ask about (matched on word boundaries).
_CUES: dict[tuple[str, ...], str] = {
    ("work", "study"): (
        r"job|jobs|work|works|working|career|profession|occupation|employer|employed|company|boss|office|"
        r"for\s+a\s+living|do\s+for\s+money|shift|shifts|colleagues?|business|study|studying|degree|major|school|"
        r"university|uni|college|course|teach|teaching|trade"
    ),
    ("location",): (
        r"live|living\s+in|city|town|country|hometown|home\s+town|from|grew\s+up|born\s+in|neighbou?rhood|"
        r"area|where\s+(?:am\s+i|do\s+i\s+(?:live|stay)|is\s+home)|move|moved|based|call\s+home|flat|apartment"
    ),
    ("family",): (
        r"son|sons|daughter|daughters|kid|kids|child|children|baby|wife|husband|partner|spouse|mum|mom|mother|"
        r"dad|father|parents?|brother|sister|siblings?|family|grandchild(?:ren)?|grand(?:son|daughter)s?|"
        r"grand(?:ma|pa|mother|father)|girlfriend|boyfriend|fianc[eé]e?|other\s+half|aunt|uncle|cousin|niece|"
        r"nephew|twins|in-laws?"
    ),
    ("pets",): (
        r"pet|pets|dog|dogs|cat|cats|puppy|kitten|animal|animals|breed|hamster|rabbit|bird|parrot|fish|horse|"
        r"lizard|snake|tortoise|turtle|guinea\s+pig"
    ),
    ("health", "diet"): (
        r"eat|eating|food|foods|diet|allergic|allergy|allergies|intolerant|intolerance|drink|drinks|medication|"
        r"medicine|meds|pills|condition|conditions|health|healthy|illness|sick|doctor|avoid|vegetarian|vegan|"
        r"dairy|gluten|meat|cook\s+for\s+me"
    ),
    ("hobbies", "preferences", "favourites"): (
        r"hobby|hobbies|play|plays|instrument|sport|sports|free\s+time|spare\s+time|fun|learning|language|"
        r"languages|practi[cs]e|club|team|craft|weekends?|pastime"
    ),
    ("preferences", "favourites"): r"favou?rite|favou?rites|like|likes|love|loves|prefer|enjoy|best|fan",
    ("possessions",): (
        r"own|owns|car|cars|drive|vehicle|bike|motorbike|scooter|phone|laptop|computer|tablet|camera|device|"
        r"boat|instrument|have\s+at\s+home"
    ),
    ("identity",): (
        r"my\s+name|what(?:'s|\s+is)\s+my\s+name|call\s+me|nickname|go\s+by|what\s+am\s+i\s+called|who\s+am\s+i|"
        r"my\s+age|how\s+old\s+am\s+i|pronouns|nationality|where\s+am\s+i\s+from"
    ),
    ("events", "birthdays", "anniversaries"): (
        r"when|date|day|birthday|birthdays|anniversary|appointment|exam|trip|flight|wedding|party|due|deadline|"
        r"plans?|coming\s+up|schedule"
    ),
}
_PATTERNS = [(topics, re.compile(rf"\b(?:{cues})\b", re.IGNORECASE)) for topics, cues in _CUES.items()]
# The cues are ASCII: on ASCII text, lower-casing once matches exactly what IGNORECASE does, at a third
# of the cost (every search asks).
_LOWER_PATTERNS = [(topics, re.compile(rf"\b(?:{cues})\b")) for topics, cues in _CUES.items()]


def query_topics(text: str) -> list[str]:
    """The topics a question is about, in the vocabulary of `TOPICS` (possibly none)."""
    found: list[str] = []
    patterns = _LOWER_PATTERNS if text.isascii() else _PATTERNS
    text = text.lower() if text.isascii() else text
    for topics, pattern in patterns:
        if pattern.search(text):
            found += [t for t in topics if t not in found]
    return found
