"""Requests about memory itself: "remember that …", "forget …"."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from memory.extraction.dates import to_epoch
from memory.extraction.rules.events import dates_in, statement
from memory.extraction.rules.found import Found, fact
from memory.extraction.rules.text import CI, Sentence, sentence, strip_end
from memory.extraction.types import CandidateKind
from memory.types import MemoryType

_POLITE = (
    r"(?:(?:please|pls|kindly)\s+|(?:can|could|would|will)\s+you\s+(?:please\s+)?|i\s+want\s+you\s+to\s+"
    r"|i'd\s+like\s+you\s+to\s+|make\s+sure\s+(?:to\s+|you\s+)?)?"
)
REMEMBER = re.compile(
    rf"^{_POLITE}(?:please\s+)?(?:remember|don't\s+forget|do\s+not\s+forget|never\s+forget|keep\s+in\s+mind|note)"
    r"(?:\s+(?:that|this))?\s*[:,-]?\s+(?P<what>.+)$",
    CI,
)
FORGET = re.compile(
    rf"^{_POLITE}(?:please\s+)?(?:forget|stop\s+remembering)(?:\s+(?:about|that))?\s*[:,-]?\s+(?P<what>.+)$",
    CI,
)
# "can you remember where I live" asks; it does not tell.
ASKS = re.compile(r"^(?:where|what|who|when|how|why|which|if|whether)\b", CI)
# An instruction about how the assistant should behave, possibly after a condition ("if I ask, …").
PROCEDURE = re.compile(
    r"^(?:(?:if|when|whenever)\s[^,]+,\s*)?(?:(?:you\s+(?:should|must|need\s+to|have\s+to)|please)\s+)?"
    r"(?:always|never|reply|respond|answer|write|speak|talk|call\s+me|address\s+me|refer\s+to\s+me|use|"
    r"avoid|don't|do\s+not|keep\s+(?:your|it|answers|replies)|be)\b",
    CI,
)
_NOTHING_IN_PARTICULAR = re.compile(
    r"^(?:it|that|this|everything|anything|all|all\s+of\s+(?:it|that|this)|all\s+that|about\s+it|them)$", CI
)
_WHAT_I_SAID = re.compile(
    r"^what\s+i\s+(?:just\s+)?(?:said|told\s+you|mentioned|wrote)(?:\s+(?:about|earlier|before))?\s*", CI
)
_FIRST_PERSON = re.compile(r"(?<![\w'])(?:i|i'm|i've|i'd|i'll|my|me|mine|myself)(?![\w'])", CI)

SentenceRules = Callable[[Sentence], list[Found]]


def remember(s: Sentence, rules: SentenceRules) -> list[Found]:
    what = s.text
    infinitive = what.lower().startswith("to ")
    if infinitive:
        s = sentence(what[3:], s.reference)
        what = s.text
    facts = [
        replace(f, candidate=replace(f.candidate, topics=[*f.candidate.topics, "remembered"]))
        for f in rules(s)
    ]
    whole = (0, len(what))
    if PROCEDURE.match(what):
        return [*facts, fact(statement(s), span=whole, topics=["remembered"], type_=MemoryType.PROCEDURAL)]
    # "remember to buy milk" is a reminder (not kept), "remember my birthday" a fragment.
    if infinitive or (len(what.split()) < 3 and not _FIRST_PERSON.match(what)) or facts:
        return facts
    mentions = dates_in(s)
    if not mentions:
        return [fact(statement(s), span=whole, topics=["remembered"])]
    return [
        fact(
            statement(s, mentions),
            span=whole,
            topics=["remembered"],
            type_=MemoryType.EPISODIC,
            event_date=to_epoch(mentions[0].day),
        )
    ]


def forget(s: Sentence) -> list[Found]:
    what = strip_end(_WHAT_I_SAID.sub("", s.text))
    if not what or _NOTHING_IN_PARTICULAR.match(what):
        return []  # nothing specific to forget; deleting "the most similar memory" would be a guess
    s = replace(s, text=what)
    return [fact(statement(s, dates_in(s)), span=(0, len(what)), topics=[], kind=CandidateKind.FORGET)]
