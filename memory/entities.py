"""The entities of a memory's text (the places, people and things it names), kept in step with
the text when it changes.

Entities are found when a memory is learned (the rules extractor and the model name them). A new
text, from staff correcting it or from the extractor updating a slot ("User lives in Lisbon" ->
"User lives in Porto"), must not keep the old ones: `entities_for_text` keeps the known entities
the new text still names and adds the proper nouns it names now.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from memory.query import normalise_tags
from memory.types import Memory

_WORD = re.compile(r"[^\W\d_][\w'\u2019-]*", re.UNICODE)
# Capitalised for grammar, not because they name something.
_NOT_NAMES = frozenset(
    [
        "user",
        "i",
        "i'm",
        "i've",
        "i'd",
        "i'll",
        "the",
        "a",
        "an",
        "my",
        "his",
        "her",
        "their",
        "our",
        "its",
        "it",
        "this",
        "that",
        "these",
        "those",
        "he",
        "she",
        "they",
        "we",
        "you",
        "your",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ]
)
_SENTENCE_END = re.compile(r"[.!?:;]\s*$")


def _names(text: str) -> list[str]:
    """Runs of capitalised words, one space apart ("User's sister Ana moved to New York" -> Ana,
    New York). The first word of a sentence is capitalised by position and grammar words by
    grammar: neither starts a name."""
    names: list[str] = []
    run: list[str] = []
    end = -1
    for match in _WORD.finditer(text):
        word = re.sub(r"['\u2019]s$|['\u2019-]+$", "", match.group())
        between = text[end : match.start()] if end >= 0 else ""
        capitalised = word[:1].isupper() and word.lower() not in _NOT_NAMES
        starts_sentence = not text[: match.start()].strip() or bool(
            _SENTENCE_END.search(text[: match.start()])
        )
        if run and (between != " " or not capitalised):
            names.append(" ".join(run))
            run = []
        if capitalised and (run or not starts_sentence):
            run.append(word)
        end = match.end()
        if match.group() != word:
            # A possessive inside a name of several words is part of it ("St Mary's", "St Mary's
            # Hospital"); on one word, or any other trailing mark, it ends the name ("Ana's car").
            if len(run) > 1 and re.search(r"['\u2019]s$", match.group()):
                run[-1] = match.group()
                continue
            if run:
                names.append(" ".join(run))
            run = []
    if run:
        names.append(" ".join(run))
    return names


def _named_in(entity: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(entity)}(?!\w)", text, re.IGNORECASE) is not None


def entities_for_text(text: str, *, known: Iterable[str] = ()) -> list[str]:
    """The entities of `text`: those of `known` (the memory's entities so far, or what the
    extractor found with the new text) that the text still names, then the proper nouns it names.
    Normalised the way the engine stores tags (lower case, de-duplicated)."""
    kept = [entity for entity in known if entity and _named_in(entity, text)]
    return normalise_tags([*kept, *_names(text)], name="entities")


def entities_after_edit(
    before: Memory, *, text: str | None, entities: list[str] | None, hints: list[str]
) -> list[str]:
    """The entities of `before` after an edit: explicit ones win; a new text gets its own."""
    if entities is not None:
        return entities
    if text is None or text == before.text:
        return before.entities
    return entities_for_text(text, known=[*before.entities, *hints])
