"""The catch-all rule: a first-person statement about a lasting part of the user's life, kept in the
user's own words ("I box three times a week" → "User boxes three times a week").

The specific rules (name, family, work, …) give cleaner facts with slots; this one covers the long
tail of ordinary speech they do not know. It keeps a clause only when it is about the user (or
their household), says something lasting (not "I'm tired", "I went to the shop", "I need a
recipe"), is not negated, hedged or addressed to the assistant, and no other rule read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from memory.extraction.rules.found import Found, fact
from memory.extraction.rules.lexicon import (
    LIFE_EVENT_VERBS,
    NOT_FACT_VERBS,
    NOT_POSSESSIONS,
    TRANSIENT_STATES,
    topic_of,
    words,
)
from memory.extraction.rules.text import (
    BOUNDARY,
    CI,
    HEDGE,
    HYPOTHETICAL,
    Sentence,
    capitalised,
    strip_end,
    third_person,
    trimmed,
)

_SUBJECT = re.compile(
    r"(?:^|(?<=[,;:])\s*|\s(?:and|but|so|because|cos|since|then|when|while|plus|though|although|that)\s+)"
    r"(?P<subject>I(?:'m|'ve|\s+am|\s+have)?|we(?:'re|'ve)?|(?:my|our)\s+(?P<noun>[\w'-]+(?:\s+(?!(?:is|are|'s|was|were|has|have|had|says|said|lives|works|comes|"
    r"goes|loves|likes|hates|does|makes|takes|gets|keeps|plays|runs|thinks|wants|just|still|and|always|never)\b)[\w'-]+)?))"
    r"(?=\s)"
    # Further into a sentence: "when I'm off I paint" (after a subordinate clause), "most of my veg comes…"
    r"|(?<=\s)(?P<inner>I(?=\s+(?!(?:think|guess|know|mean|hope|wish|want|need|said|told|feel|thought|was|were|am|had|did|do|"
    r"can|could|would|should|will|might|must)\b)[a-z]+s?\s)|(?:my|our)\s+(?P<inner_noun>[\w'-]+)(?=\s+(?:is|are|has|have|comes|"
    r"lives|works|was|just|still|always|never|loves|plays|goes|makes|takes|keeps|gets|turns|turned)\b))",
    CI,
)
_ADVERBS = re.compile(
    r"^(?:(?:also|really|just|still|usually|always|often|sometimes|now|only|actually|recently|currently|mostly|"
    r"generally|normally|regularly|occasionally|basically|literally|officially|finally|even|already|proudly|"
    r"happily|totally|definitely|absolutely|genuinely|seriously|honestly|pretty\s+much|kind\s+of|kinda|"
    r"religiously|secretly|mainly|barely|properly)\s+)+",
    CI,
)
# -ing forms that describe a life ("I'm learning Spanish"), unlike a moment ("I'm heading out").
_LASTING_ING = words(
    "learning studying living working training teaching taking doing playing writing building saving "
    "renovating raising volunteering running coaching practising practicing growing fostering caring "
    "attending majoring minoring apprenticing interning freelancing commuting homeschooling breastfeeding "
    "dating seeing expecting recovering trying_to_learn collecting knitting sewing painting brewing baking "
    "restoring"
)
# "my day", "my bad", "my phone is dying": possessives about the moment or the conversation.
_NOT_ABOUT_LIFE = words(
    "day bad god goodness gosh mind head point question turn guess fault pleasure phone_is thoughts "
    "understanding plan plans idea ideas answer answers message question_is problem issue draft list "
    "email letter order request week weekend morning evening night afternoon today tonight "
    "brain heart eyes hands internet wifi battery screen code"
)
_TIME_PREFIX = re.compile(
    r"^(?:(?:every|each|most|on|at|in|during|twice|once|three\s+times|four\s+times|some)\b[^,]{0,30}?|"
    r"(?:in|during)\s+my\s+(?:free|spare)\s+time)\s*,?\s*$",
    CI,
)
_SUBORDINATE = re.compile(
    r"^(?:when|while|whenever|after|before|once|since|as|if|every|each|most|on|at|in)\b", CI
)
_YOU = re.compile(r"\b(?:you|your|you're|u|ur|chatbot|assistant)\b", CI)
_NEGATED = re.compile(r"\b(?:not|never|no|nobody|nothing|neither|nor|without)\b|n't\b", CI)
MIN_WORDS, MAX_WORDS = 3, 18


def _tokens(text: str) -> list[str]:
    """The words after the subject, adverbs dropped, lower case."""
    return [w.lower().strip(",.!?") for w in _ADVERBS.sub("", text.strip()).split()]


def _lasting(subject: str, noun: str, rest: str) -> bool:
    """Whether `subject` + `rest` says something lasting about the user."""
    subject = " ".join(subject.lower().split())
    words_ = _tokens(rest)
    if not words_:
        return False
    word, after = words_[0], (words_[1] if len(words_) > 1 else "")
    if subject in ("i'm", "i am", "we're"):
        if word in TRANSIENT_STATES or (
            word in ("a", "an") and after in ("bit", "little", "lot", "mess", "wreck")
        ):
            return False
        return not (word.endswith("ing") and word not in _LASTING_ING)
    if subject in ("i have", "we have") or (subject in ("i've", "we've") and word == "got"):
        # Possession or condition: "I have IBS", "I've got two kids"; not "I have a question".
        return _has_thing(" ".join(words_[1:] if word == "got" else words_))
    if subject in ("i've", "we've"):
        if word == "been" and len(words_) < 3:
            return False  # "I've been playing": nothing said about what
        if word == "been":
            if after in _LASTING_ING or _DURATION.search(rest):
                return True
            return after not in TRANSIENT_STATES and (
                after.endswith("ing") or _SINCE.search(rest) is not None
            )
        return word not in NOT_FACT_VERBS and (word.endswith(("ed", "en", "t")) or word in LIFE_EVENT_VERBS)
    if subject in ("i", "we"):
        if word == "got":  # "I got married", "I got promoted": a life event
            return (
                after.endswith("ed")
                or after in LIFE_EVENT_VERBS
                or after in ("engaged", "married", "divorced")
            )
        if word in NOT_FACT_VERBS or _PRONOUN_OBJECT.match(after):
            return False
        if word in LIFE_EVENT_VERBS:
            return True
        # Present tense only (past actions are moments, not facts); "-ed" and irregular pasts are out.
        return not word.endswith("ed") and word not in _PAST_IRREGULAR
    # my/our + noun, unless all it says is an opinion ("my job is boring") or a moment gone by
    # ("my sister and I went hiking")
    if len(words_) == 2 and words_[0] in ("is", "'s", "was", "are") and words_[1] in _OPINIONS:
        return False
    if any(w in _PAST_IRREGULAR or (w.endswith("ed") and w not in LIFE_EVENT_VERBS) for w in words_[:3]):
        return False
    if words_[0] in _REPORTING:  # "my wife says I'm grumpy": what someone said, not a fact
        return False
    noun = " ".join(noun.lower().split())
    return bool(noun) and noun.split()[0] not in _NOT_ABOUT_LIFE and noun not in _NOT_ABOUT_LIFE


_REPORTING = words("says thinks tells asks wants reckons believes keeps reminds insists claims jokes")
_OPINIONS = words(
    "boring great good bad fine ok okay awesome amazing terrible awful nice cool fun hard tough crazy insane "
    "weird annoying stressful exhausting busy slow fast easy difficult rubbish shit meh lovely perfect "
    "broken dead dying"
)
_DURATION = re.compile(r"\b(?:for|since)\b.*\b(?:years?|months?|decades?|ages|forever)\b", CI)
_SINCE = re.compile(r"\b(?:for|since)\b", CI)


_DETERMINERS = re.compile(
    r"^(?:(?:a|an|the|some|this|that|these|those|my|our|two|three|four|five|\d+|really|very|pretty|quite|so|super|bad|"
    r"severe|mild|chronic|beat\s+up|beat-up|old|"
    r"little|big|small|new|old|lot\s+of|bit\s+of)\s+)*",
    CI,
)
_PRONOUN_OBJECT = re.compile(
    r"^(?:it|that|this|them|what|why|how|to|back|there|here|up|out|off|you|one)\b", CI
)


def _has_thing(thing: str) -> bool:
    if _PRONOUN_OBJECT.match(thing.strip()):
        return False
    head = _DETERMINERS.sub("", thing.strip().lower()).split()
    return bool(head) and head[0].strip(",.") not in NOT_POSSESSIONS and not head[0].endswith("ing")


_PAST_IRREGULAR = words(
    "went came saw met made took left found felt gave knew lost paid put read said sent spent told thought "
    "wrote won flew drove rode sat stood slept taught caught brought heard held kept meant spoke swam threw "
    "woke wore broke chose fell forgot hit hurt let set cut grew ran ate drank was were had did got"
)


def _clauses(s: Sentence) -> Iterator[tuple[int, str, str, str]]:
    """(start, subject, noun, clause text) for each first-person clause of the sentence."""
    text = s.text
    subordinate = _SUBORDINATE.match(text) is not None
    for match in _SUBJECT.finditer(text):
        name = "subject" if match["subject"] else "inner"
        if name == "inner" and match["inner"] == "I" and not subordinate:
            continue  # "the ThinkPad I inherited": a relative clause, not a statement of its own
        subject, noun = match[name], (match["noun"] or match["inner_noun"] or "")
        start = match.start(name)
        clause = strip_end(BOUNDARY.split(text[match.end() :], maxsplit=1)[0])
        prefix = text[:start]
        if start and _TIME_PREFIX.match(prefix) and not BOUNDARY.search(prefix):
            yield 0, subject, noun, f"{prefix.strip()} {subject} {clause}"
        else:
            yield start, subject, noun, f"{subject} {clause}"


def statements(s: Sentence, *, taken: list[tuple[int, int]]) -> Iterator[Found]:
    for start, subject, noun, clause in _clauses(s):
        if HYPOTHETICAL.search(s.text[:start]) or HYPOTHETICAL.search(clause):
            continue
        end = start + len(clause)
        if any(a < end and start < b for a, b in taken):
            continue  # a specific rule read this part
        rest = (
            clause.split(None, len(subject.split()))[-1] if len(clause.split()) > len(subject.split()) else ""
        )
        if noun:
            rest = clause.split(noun, 1)[-1]
        if len(clause.split()) > MAX_WORDS:  # "… for 6 years and the owner wants me to …": the first part
            clause = re.split(r"\s+and\s+", clause, maxsplit=1)[0]
            end = start + len(clause)
        n_words = len(clause.split())
        if not (MIN_WORDS <= n_words <= MAX_WORDS) or not _lasting(subject, noun, rest):
            continue
        if _YOU.search(clause) or _NEGATED.search(clause) or HEDGE.search(clause) or "?" in clause:
            continue
        text = capitalised(third_person(trimmed(clause)))
        if "User" not in text:
            continue
        yield fact(text, span=(start, end), topics=[topic_of(clause)])
