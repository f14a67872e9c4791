"""Dated things: events with a day ("I went to Lisbon yesterday", "my exam is on 18 December") and
dates that come back every year (birthdays, anniversaries), which never expire and carry no year."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from memory.extraction.dates import DateMention, find_date_mentions, spoken_date, to_epoch
from memory.extraction.rules.found import Found, fact
from memory.extraction.rules.lexicon import RELATIVES, words
from memory.extraction.rules.text import (
    BOUNDARY,
    CI,
    HYPOTHETICAL,
    RECURRING,
    Sentence,
    capitalised,
    third_person,
)
from memory.types import MemoryType

# Events are said in the first person: "I", "my", "we", "our".
_FIRST_PERSON = re.compile(
    r"(?<![\w'])(?:i|i'm|i've|i'd|i'll|my|me|mine|myself|we|we're|we've|our|us)(?![\w'])", CI
)
# Plans and wishes are not events: "I'd love to visit Rome next year", "I want to move next month".
_EVENT_HEDGE = re.compile(
    r"\b(?:maybe|perhaps|would|could|might|probably|hope|hoping|want|wanna|wants|wish(?!\s+me\s+luck)|thinking\s+of|"
    r"thinking\s+about|considering|need\s+(?:a|an|some|help|ideas?|you|to\s+know))\b|'d\b",
    CI,
)
_BARE_BEFORE = words("on by since until till from before after for of through between to as")
_BARE_AFTER = words("is was will")


def dates_in(s: Sentence) -> list[DateMention]:
    mentions = find_date_mentions(s.text, reference=s.reference, tense=s.tense)
    if RECURRING.search(s.text):
        # "my birthday is May 3" recurs: giving it this year would invent a fact.
        mentions = [m for m in mentions if m.kind != "yearless"]
    return mentions


def _in_place(text: str, mention: DateMention) -> str:
    """The replacement for one mention: "on 23 November 2026", or the bare date after a preposition."""
    spoken = spoken_date(mention.day)
    if mention.text.lower().startswith("on "):
        return f"on {spoken}"
    before = re.search(r"(\w+)\s*$", text[: mention.start])
    after = re.match(r"\s*(\w+)", text[mention.end :])
    if (before and before[1].lower() in _BARE_BEFORE) or (after and after[1].lower() in _BARE_AFTER):
        return spoken
    return f"on {spoken}"


def with_dates(text: str, mentions: Sequence[DateMention]) -> str:
    """`text` with each date expression replaced by its date; a leading one moves to the end of a
    one-clause sentence ("Yesterday I went to Lisbon" → "I went to Lisbon on 23 November 2026")."""
    pieces: list[str] = []
    position = 0
    trailer = ""
    for mention in mentions:
        if mention.start == 0 and _in_place(text, mention).startswith("on "):
            trailer = f" on {spoken_date(mention.day)}"
            after = text[mention.end :]
            position = mention.end + len(after) - len(after.lstrip(" ,"))
            continue
        pieces.append(text[position : mention.start] + _in_place(text, mention))
        position = mention.end
    pieces.append(text[position:])
    body = "".join(pieces).rstrip()
    if trailer and BOUNDARY.search(body):
        # With several clauses the end would attach the date to the last one: keep it in front.
        return f"On {trailer.removeprefix(' on ')}, {body}"
    return body + trailer


def statement(s: Sentence, mentions: Sequence[DateMention] = ()) -> str:
    return capitalised(third_person(with_dates(s.text, mentions)))


# Without "I" or "my", a dated plan is still the user's when it names one: "first exam is dec 18".
_EVENT_NOUN = re.compile(
    r"\b(?:exam|exams|test|appointment|interview|wedding|flight|party|surgery|operation|deadline|trip|match|race|"
    r"concert|gig|recital|audition|graduation|viva|defen[cs]e|presentation|due|birthday|anniversary|holiday|vacation|"
    r"check-?up|scan|shift|move|moving|conference|marathon|tournament|competition|ceremony|funeral|christening|"
    r"flying|fly|flight|ride|drive|visit|visiting|travel|travelling|traveling|leave|leaving|arrive|arriving)\b",
    CI,
)


def events(s: Sentence) -> Iterator[Found]:
    if not (_FIRST_PERSON.search(s.text) or _EVENT_NOUN.search(s.text)):
        return
    mentions = dates_in(s)
    if not mentions:
        return
    # The statement is the whole sentence; it only claims the clause around its date, so the other
    # clauses can still be read as facts of their own. Hedges count in that clause only ("the flight
    # would be too late" does not make "she is due on 20 December" a maybe).
    first = mentions[0]
    starts = [m.end() for m in BOUNDARY.finditer(s.text, 0, first.start)]
    ends = [m.start() for m in BOUNDARY.finditer(s.text, first.end)]
    span = (starts[-1] if starts else 0, ends[0] if ends else len(s.text))
    clause = s.text[span[0] : span[1]]
    if HYPOTHETICAL.search(s.text[: span[1]]) or _EVENT_HEDGE.search(clause):
        return
    if _BORN.search(clause):  # a birth date is who someone is, not an event that passes
        yield fact(statement(s, mentions), span=span, topics=["birthdays"], event_date=to_epoch(first.day))
        return
    yield fact(
        statement(s, mentions),
        span=span,
        topics=["events"],
        type_=MemoryType.EPISODIC,
        event_date=to_epoch(first.day),
    )


# --- every year -----------------------------------------------------------------------------------

_RELATIVE_WORDS = "|".join(sorted((re.escape(r) for r in RELATIVES), key=len, reverse=True))
_WHOSE = (
    rf"(?P<whose>(?:my|our)(?:\s+(?:little|big|older|younger|baby|twin|eldest|youngest))?(?:\s+(?:{_RELATIVE_WORDS}))?"
    r"(?:\s+[A-Z][\w'-]*)?|[A-Z][\w'-]*)"
)
_BIRTHDAY = re.compile(
    rf"{_WHOSE}(?:'s|'|s')?\s+(?:\d{{1,3}}(?:st|nd|rd|th)\s+)?(?P<what>(?:wedding\s+)?(?:birthday|bday|b-day|anniversary|"
    r"name\s+day|saint's\s+day))\s+(?:is|'s|falls|was|will\s+be|is\s+coming\s+up)?\s*(?:on\s+)?",
    CI,
)
_BORN = re.compile(r"\b(?:was|were)\s+born\b", CI)
_BORN_ON = re.compile(rf"(?:\bI|{_WHOSE})\s+was\s+born\s+on\s+", CI)
_TURNS = re.compile(
    rf"{_WHOSE}\s+(?:turns|is\s+turning|will\s+be|'ll\s+be)\s+(?P<age>\d{{1,3}})\s+(?:on|this|next)\b", CI
)


def _yearly(s: Sentence, whose: str, what: str, start: int) -> Found | None:
    mentions = [
        m
        for m in find_date_mentions(s.text[start:], reference=s.reference, tense="future")
        if m.kind in ("yearless", "dated")
    ]
    if not mentions or mentions[0].start > 40:
        return None
    day = mentions[0].day
    whose = re.sub(r"'s?$", "", whose)
    owner = third_person(whose) if whose.lower().startswith(("my", "our")) else whose
    subject = "User's" if owner in ("User's", "User") else f"{owner}'s"
    kind = "birthday" if what.lower() in ("bday", "b-day") else " ".join(what.lower().split())
    end = start + mentions[0].end
    return fact(
        f"{capitalised(subject)} {kind} is {spoken_date(day, year=False)}",
        span=(0, end),
        topics=["birthdays" if kind == "birthday" else "anniversaries"],
        entities=[],
    )


def yearly(s: Sentence) -> Iterator[Found]:
    """Birthdays and anniversaries: one semantic memory that never expires, with no year."""
    for match in _BIRTHDAY.finditer(s.text):
        whose = match["whose"]
        if not re.match(r"(?:my|our)\b", whose, CI) and whose.lower() in ("the", "a", "his", "her", "their"):
            continue
        found = _yearly(s, whose, match["what"], match.end())
        if found:
            yield found
    its_my = re.search(
        r"\b(?:it's|its|it\s+is|that's|is)\s+(?:my|our)\s+(?P<what>birthday|bday|anniversary)\b", s.text, CI
    )
    if its_my:
        mentions = find_date_mentions(s.text, reference=s.reference, tense="future")
        if mentions:
            kind = "anniversary" if its_my["what"].lower() == "anniversary" else "birthday"
            yield fact(
                f"User's {kind} is {spoken_date(mentions[0].day, year=False)}",
                span=(0, len(s.text)),
                topics=["birthdays" if kind == "birthday" else "anniversaries"],
            )
    for match in _BORN_ON.finditer(s.text):
        found = _yearly(s, match["whose"] or "my", "birthday", match.end())
        if found:
            yield found
    for match in _TURNS.finditer(s.text):
        found = _yearly(s, match["whose"], "birthday", match.end() - len(match[0].split()[-1]))
        if found:
            yield found
