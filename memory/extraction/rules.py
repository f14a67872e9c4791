"""The offline extractor: deterministic rules that turn a user's explicit statements into candidates.

Used when no LLM is configured. It reads only the user's messages (the assistant's text is never a
source of facts about the user), splits them into sentences and runs every rule of `_RULES` on each
sentence. The rules are deliberately narrow: they fire on explicit first-person statements ("I live
in Porto", "my name is Alice") and prefer missing a fact to inventing one. Questions, hypotheticals
("if I lived in Paris") and negated or hedged clauses ("I don't think I like it") yield nothing.

Every candidate text is a short third-person statement about "User" that keeps the user's own words
for the object ("User lives in Porto"), with relative dates replaced by ISO dates.

Slots (see `Candidate.slot`), i.e. single-valued attributes where a new value replaces the old one:

* "name", "location", "job", "employer";
* "preference:<key>" for a changed preference that names what it replaces ("I've switched from
  coffee to tea" → slot "preference:coffee"; key = the old object, lower-case, articles and
  punctuation dropped), and "preference" for a changed preference that does not ("I now prefer
  tea"). Plain preferences ("I prefer tea") carry no slot: they are added beside the others.

How the decision step should use the preference slots: candidates carrying them always have the
topic "preferences". For "preference:<key>", replace the most similar existing memory with the topic
"preferences" whose text contains <key> (as a word sequence, case-insensitively); if none does, add.
For the generic "preference", replace the most similar "preferences" memory only when it is similar
enough to be about the same thing (the usual update threshold), else add. For the other slots,
replace the most similar memory carrying the topic the rule gives that slot ("identity" for name,
"location", "work" for job and employer — job and employer share "work", so match on similarity).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from memory.extraction.dates import DateMention, Tense, find_date_mentions, to_epoch
from memory.extraction.types import Candidate, CandidateKind, TurnMessage
from memory.types import MemoryType

RULES_VERSION = "rules-v1"
# Longer "sentences" are pasted text (code, logs, articles), not statements about the user; skipping
# them also keeps the rules' cost bounded.
MAX_SENTENCE_CHARS = 1000

_I = re.IGNORECASE


def _words(text: str) -> list[str]:
    """Word lists written as one string, so the tables below stay readable."""
    return text.split()


# --- third person -------------------------------------------------------------------------------

_ADVERBS = (
    "also|really|just|still|usually|always|never|often|sometimes|now|only|actually|recently|currently|"
    "definitely|absolutely|truly|mostly|rarely|even|already|finally|generally|normally|totally|"
    "honestly|genuinely|seriously|mainly|regularly|occasionally|barely|hardly|seldom|especially"
)
_PERSON = re.compile(
    r"(?<![\w'])(?:"
    r"(?P<contracted>i'm|i've|i'd|i'll)"
    rf"|(?P<i>i)(?P<tail>(?:\s+(?:{_ADVERBS}))*\s+(?P<verb>[a-z]+(?:n't)?))?"
    r"|(?P<word>my|mine|myself|me)"
    r")(?![\w']|\.\w)",
    _I,
)
_CONTRACTIONS = {"i'm": "User is", "i've": "User has", "i'd": "User would", "i'll": "User will"}
_WORDS = {"my": "User's", "mine": "User's", "myself": "User", "me": "User"}
_IRREGULAR = {
    "am": "is",
    "have": "has",
    "do": "does",
    "go": "goes",
    "don't": "doesn't",
    "haven't": "hasn't",
    "were": "was",
}
# Words after "I" that take no -s: modals, past forms and words that are not verbs at all.
_UNCHANGED = frozenset(
    _words(
        "can could will would should shall may might must did was had got went came saw met made took "
        "left bought began found felt gave knew lost paid put read said sent spent told thought wrote "
        "won flew drove rode sat stood slept taught caught brought built heard held kept led meant sold "
        "spoke swam threw understood woke wore broke chose fell forgot hit hurt let quit set cut became "
        "grew ran ate drank "
        "myself too alone personally and or but the a an in on at who that as then if so to not both "
        "all together again here there"
    )
    + _words(_ADVERBS.replace("|", " "))
)


def _third_person_verb(verb: str) -> str:
    lower = verb.lower()
    if lower in _IRREGULAR:
        return _IRREGULAR[lower]
    if lower in _UNCHANGED or lower.endswith("n't") or (lower.endswith("ed") and not lower.endswith("eed")):
        return verb
    if lower.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if len(lower) > 2 and lower.endswith("y") and lower[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


# "my wife and I", "Ana and I" at the start of a clause; not "…two weeks ago and I love it".
_PLURAL_SUBJECT = re.compile(
    r"(?:^|[,;:]\s*|\b(?:that|because|when|while|since)\s+)(?:my\s+\w+|[A-Z]\w*|the\s+\w+|both)"
    r"(?:\s+\w+)?\s+(?:and|&)\s+$"
)


def _person_replacement(match: re.Match[str]) -> str:
    if match["contracted"]:
        rest = match.string[match.end() :]
        if match["contracted"].lower() == "i'd" and re.match(r"\s+been\b", rest):
            return "User had"  # "I'd been" is "I had been", not "I would been"
        return _CONTRACTIONS[match["contracted"].lower()]
    if match["word"]:
        return _WORDS[match["word"].lower()]
    if not match["verb"]:
        return "User"
    before = match.string[: match.start()]
    tail = match["tail"]
    if _PLURAL_SUBJECT.search(before):
        return "User" + tail  # "my wife and I live": plural subject, the verb stays as it is
    return "User" + tail[: -len(match["verb"])] + _third_person_verb(match["verb"])


def third_person(text: str) -> str:
    """Rewrite the user's first person as statements about "User" (I → User, my → User's, …).

    "I" with a present-tense verb gets the verb's third-person form ("I live" → "User lives"); past
    forms and modals stay ("I went" → "User went"). Only simple cases: anything else is left as said.
    """
    return _PERSON.sub(_person_replacement, text)


# --- sentences ----------------------------------------------------------------------------------

_BREAK = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*|;\s+")
# A full stop after these is an abbreviation, not the end of a sentence.
_ABBREVIATION = re.compile(
    r"\b(?:dr|mr|mrs|ms|st|prof|jr|sr|vs|etc|e\.g|i\.e|mt|ft|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.$",
    _I,
)
_MARKERS = re.compile(
    r"^(?:(?:oh|ok|okay|hey|hi|hello|well|so|and|also|anyway|anyways|btw|by\s+the\s+way|fyi|actually|"
    r"just\s+so\s+you\s+know|for\s+the\s+record|yeah|yes|yep|no|nope|alright|right|plus|but)"
    r"(?![\w'])[\s,:!.-]*)+",
    _I,
)
_QUESTION = re.compile(
    r"^(?:do|does|did|is|are|am|was|were|can|could|would|will|should|shall|may|might|must|have|has|"
    r"had|what|where|who|whom|whose|when|why|how|which|isn't|aren't|don't|doesn't|didn't|won't|"
    r"wouldn't|can't|couldn't|shouldn't)\b",
    _I,
)
# Imagined situations anywhere before a statement make it not a statement.
_HYPOTHETICAL = re.compile(
    r"\b(?:if|suppose|supposing|imagine|imagining|hypothetically|pretend|pretending|let's\s+say|"
    r"lets\s+say|whether|wish|unless|in\s+case|dreamt|dreamed|dream)\b",
    _I,
)
# Negation or hedging in the same clause ("I don't think I like it", "maybe I live in…").
_HEDGE = re.compile(r"\b(?:not|never|maybe|perhaps|would|could|might|wonder|guess)\b|n't\b", _I)
_CLAUSE = re.compile(r"[,;:]|\s(?:but|and|because|so)\s", _I)
_RECURRING = re.compile(
    r"\b(?:birthday|birthdays|anniversary|every|each|annually|yearly|weekly|monthly|daily)\b", _I
)
_FUTURE = re.compile(
    r"\b(?:will|shall|going\s+to|gonna|plan|planning|planned|appointment|scheduled|upcoming)\b|'ll\b", _I
)
_PAST = re.compile(
    r"\b(?:was|were|went|did|had|got|came|left|met|saw|visited|moved|arrived|returned|happened|"
    r"graduated|married|born|started|finished|bought|flew|drove|ago)\b",
    _I,
)


@dataclass(frozen=True)
class _Sentence:
    """One statement of a user message, ready for the rules."""

    text: str  # discourse markers, request wording and final punctuation removed
    reference: datetime  # when it was said (UTC); relative dates resolve against it
    tense: Tense  # which way yearless dates and "on <weekday>" lean


def _split_sentences(text: str) -> list[str]:
    pieces = [p for p in _BREAK.split(text.replace("\u2019", "'").replace("\u2018", "'")) if p.strip()]
    sentences: list[str] = []
    for piece in pieces:
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return [" ".join(s.split()) for s in sentences]


def _strip_end(text: str) -> str:
    return text.strip().rstrip(".!?\u2026;:,").strip().strip("\"'").strip()


def _tense(text: str) -> Tense:
    future, past = bool(_FUTURE.search(text)), bool(_PAST.search(text))
    if future == past:
        return "any"
    return "future" if future else "past"


def _sentence(text: str, reference: datetime) -> _Sentence:
    cleaned = _strip_end(text)
    return _Sentence(cleaned, reference, _tense(cleaned))


def _usable(s: _Sentence, match: re.Match[str]) -> bool:
    """False when the matched statement is imagined, negated or hedged."""
    before = s.text[: match.start()]
    if _HYPOTHETICAL.search(before):
        return False
    return not _HEDGE.search(_CLAUSE.split(before)[-1])


def _each(regex: re.Pattern[str], s: _Sentence) -> Iterator[re.Match[str]]:
    return (m for m in regex.finditer(s.text) if _usable(s, m))


# --- objects ("Porto", "hiking", "a nurse") -------------------------------------------------------

_BOUNDARY = re.compile(
    r"\s*[,;:()]|\s+(?:but|because|cause|since|so|although|though|while|whereas|unless|until|when|"
    r"where|which|who|if|except)\b"
    r"|\s+(?:and|or|&)\s+(?=(?:i|i'm|i've|i'd|i'll|my|we|you|he|she|it|they|it's|there|that|this|then)\b)",
    _I,
)
_MONTH_NAMES = "january|february|march|april|may|june|july|august|september|october|november|december"
_TRAILING_WHEN = re.compile(
    rf"\s+(?:in|back\s+in|around|since)\s+(?:\d{{4}}|{_MONTH_NAMES}|the\s+(?:summer|spring|winter|fall|autumn))\b.*$",
    _I,
)
_TRAILING_WORDS = re.compile(
    r"(?:\s+(?:now|anymore|any\s+more|currently|nowadays|these\s+days|at\s+the\s+moment|right\s+now|"
    r"for\s+now|too|also|as\s+well|a\s+lot|very\s+much|so\s+much|really|again|lately|though|instead|"
    r"then|actually|honestly|tbh|lol|haha|please))+$",
    _I,
)
# An object that is a pronoun or a clause is not a fact about the user ("I love it", "I like that…").
_NOT_AN_OBJECT = re.compile(
    r"^(?:it|its|it's|that|this|these|those|you|your|them|him|her|us|what|how|when|where|which|who|"
    r"whom|there|here|one|so|very|much|not|being|to\s+be|doing)\b",
    _I,
)
_I_SUBJECT = re.compile(r"(?<![\w'])(?:i|i'm|i've|i'd|i'll)(?![\w'])", _I)
_SUBJECT = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|we|you|he|she|it|they)\b", _I)


def _comma_list(rest: str) -> str | None:
    """ "hiking, swimming and cycling": a short list, kept whole instead of cut at the first comma."""
    parts = [p.strip() for p in _strip_end(rest).split(",")]
    if len(parts) < 2 or not re.search(r"(?:^|\s)(?:and|or)\s", parts[-1], _I):
        return None
    if any(not p or len(p.split()) > 4 or _SUBJECT.search(p) for p in parts):
        return None
    return ", ".join(parts)


_OBJECT_WINDOW = 200


def _object(
    s: _Sentence, match: re.Match[str], *, stops: str = "", max_words: int = 6, keep_lists: bool = False
) -> str:
    """The object after `match`, up to the end of its clause, without trailing dates and fillers."""
    # Objects are a few words: looking further only costs time (and "no clause end in sight" means
    # the object is too long anyway).
    rest = s.text[match.end() : match.end() + _OBJECT_WINDOW]
    if len(rest) == _OBJECT_WINDOW and not _BOUNDARY.search(rest):
        return ""
    listed = _comma_list(rest) if keep_lists else None
    if listed is not None:
        obj = listed
    else:
        obj = _BOUNDARY.split(rest, maxsplit=1)[0]
        if stops:
            obj = re.split(rf"\s+(?:{stops})\b", obj, maxsplit=1, flags=_I)[0]
    dates = find_date_mentions(obj, reference=s.reference)
    if dates:
        obj = obj[: dates[0].start]
    obj = _TRAILING_WHEN.sub("", obj)
    obj = _TRAILING_WORDS.sub("", _strip_end(obj))
    obj = _strip_end(obj)
    # An object with its own "I" is a clause ("I like when I…"), not a thing.
    if not obj or _NOT_AN_OBJECT.match(obj) or _I_SUBJECT.search(obj) or len(obj.split()) > max_words:
        return ""
    return obj


# --- names ------------------------------------------------------------------------------------

_NAME_TOKEN = re.compile(r"^[^\W\d_][\w'.-]*$")
_NOT_A_NAME = frozenset(
    _words(
        "and but or so i i'm im by the a an not just actually btw though please from too now here there "
        "if because since when as in at on to for with lol haha thanks thank ok okay really also still "
        "kind sort very is was obviously anyway anyways what who you your me my it that this tired fine "
        "sorry happy sure"
    )
)


_TITLES = frozenset(_words("dr mr mrs ms prof"))


def _names(rest: str, *, capitalised: bool, many: bool = False) -> list[str]:
    """The name(s) at the start of `rest`: up to 3 capitalised words each ("Anna Maria"), or one
    lower-case word when the user types in lower case; with `many`, a list joined by "and"/","."""
    names: list[str] = []
    current: list[str] = []
    for raw in rest[:200].split():  # a few names of a few words each; never the whole message
        token = raw.rstrip(".,!?;:")
        ends_clause = token != raw and not (raw.endswith(".") and token.lower() in _TITLES)
        lower = token.lower()
        if current and lower == "and" and many and not ends_clause:
            names.append(" ".join(current))
            current = []
            continue
        if not _NAME_TOKEN.match(token) or lower in _NOT_A_NAME:
            break
        upper = token[0].isupper()
        if (capitalised and not upper) or (current and not (upper and current[0][0].isupper())):
            break
        current.append(token + "." if token.lower() in _TITLES and raw.endswith(".") else token)
        if ends_clause and not (many and raw.endswith(",")):
            break
        if raw.endswith(","):
            names.append(" ".join(current))
            current = []
        elif len(current) == 3 or not upper:
            names.append(" ".join(current))
            current = []
            if not many:
                break
    if current:
        names.append(" ".join(current))
    return names if many else names[:1]


# --- candidates ---------------------------------------------------------------------------------


def _candidate(
    text: str,
    *,
    topics: Sequence[str],
    entities: Sequence[str] = (),
    slot: str = "",
    type_: MemoryType = MemoryType.SEMANTIC,
    kind: CandidateKind = CandidateKind.REMEMBER,
    event_date: float | None = None,
) -> Candidate:
    return Candidate(
        text=text,
        type=type_,
        kind=kind,
        topics=list(topics),
        entities=list(entities),
        event_date=event_date,
        slot=slot,
    )


# --- rules: each takes a sentence and yields candidates ------------------------------------------

_MY_NAME = re.compile(r"\bmy\s+name(?:\s+is|'s)\s+|\bI(?:'m|\s+am)\s+called\s+", _I)
# "call me" only as a request at the start, so "don't call me that" and "call me crazy" are left out.
_CALL_ME = re.compile(r"^(?:(?:please|just|you\s+can|you\s+may|feel\s+free\s+to)\s+)*call\s+me\s+", _I)


def _name(s: _Sentence) -> Iterator[Candidate]:
    for match in _each(_MY_NAME, s):
        for name in _names(s.text[match.end() :], capitalised=False):
            yield _candidate(f"User's name is {name}", topics=["identity"], entities=[name], slot="name")
    for match in _each(_CALL_ME, s):
        for name in _names(s.text[match.end() :], capitalised=True):
            yield _candidate(
                f"User wants to be called {name}", topics=["identity"], entities=[name], slot="name"
            )


_LIVE_IN = re.compile(
    r"\bI\s+(?:(?:currently|now|still|also|actually)\s+)?live\s+in\s+"
    r"|\bI(?:'m|\s+am)\s+(?:(?:currently|now|still|also)\s+)?(?:living|based)\s+in\s+"
    r"|\bI(?:'ve|\s+have)?\s+(?:(?:just|recently|finally)\s+)?moved\s+(?:from\s+.{1,60}?\s+)?to\s+",
    _I,
)


def _location(s: _Sentence) -> Iterator[Candidate]:
    for match in _each(_LIVE_IN, s):
        place = _object(s, match, stops="with|for|from|to|as|because")
        # "a flat", "my parents' house": a dwelling, not a place worth a location slot.
        if place and not re.match(r"(?:a|an|my|our|his|her|their|your)\s", place, _I):
            yield _candidate(f"User lives in {place}", topics=["location"], entities=[place], slot="location")


_WORK_AS = re.compile(
    r"\bI\s+(?:(?:currently|now|still|also)\s+)?work\s+as\s+"
    r"|\bI(?:'m|\s+am)\s+(?:(?:currently|now|still|also)\s+)?working\s+as\s+"
    r"|\bmy\s+job\s+is\s+(?=an?\s)"  # "my job is a nurse", but not "my job is boring"
    r"|\bmy\s+(?:profession|occupation|job\s+title)\s+is\s+",
    _I,
)
_BY_PROFESSION = re.compile(r"\bI(?:'m|\s+am)\s+(?=an?\s+[^,;]{1,60}?\s+by\s+profession\b)", _I)


def _as_job(role: str) -> str:
    if re.match(r"an?\s", role, _I):
        return role
    return ("an " if role[:1].lower() in "aeiou" else "a ") + role


def _job(s: _Sentence) -> Iterator[Candidate]:
    for regex in (_WORK_AS, _BY_PROFESSION):
        for match in _each(regex, s):
            role = _object(s, match, stops="at|for|in|with|since|on|from|by\\s+profession|by")
            if role:
                yield _candidate(f"User works as {_as_job(third_person(role))}", topics=["work"], slot="job")


_WORK_AT = re.compile(
    r"\bI(?:\s+(?:currently|now|still|also))?(?:\s+work|(?:'m|\s+am)\s+(?:(?:currently|now|still|also)\s+)?working)"
    r"(?:\s+(?P<prep>for)\s+|(?:\s+as\s+an?\s+[^,;]{1,60}?)?\s+(?P<at>at)\s+)",
    _I,
)
# "I work at home", "I work for myself": not an employer.
_NOT_AN_EMPLOYER = re.compile(
    r"^(?:home|night|nights|weekends?|myself|me|a\s+living|free|fun|least|once|times?|first|money|"
    r"the\s+moment|the\s+weekends?|the\s+same\s+place)\b",
    _I,
)


def _employer(s: _Sentence) -> Iterator[Candidate]:
    for match in _each(_WORK_AT, s):
        employer = _object(s, match, stops="as|in|since|for|with|on|from|to|doing")
        if employer and not _NOT_AN_EMPLOYER.match(employer):
            prep = (match["prep"] or match["at"]).lower()
            yield _candidate(
                f"User works {prep} {third_person(employer)}",
                topics=["work"],
                entities=[employer],
                slot="employer",
            )


_LIKE = re.compile(
    r"\bI\s+(?:(?:really|also|absolutely|truly|just|do|genuinely|totally|still|especially)\s+)*"
    r"(?:like|love|enjoy|adore)\s+"
    r"|\bI(?:'m|\s+am)\s+(?:also\s+|really\s+)?(?:a\s+)?(?:big\s+|huge\s+|massive\s+)?fan\s+of\s+",
    _I,
)
_DISLIKE = re.compile(
    r"\bI\s+(?:(?:really|also|just|absolutely|truly|totally|still|honestly)\s+)*"
    r"(?:(?:don't|do\s+not|dont)\s+(?:(?:really|particularly)\s+)?(?:like|enjoy|love)|dislike|hate|detest"
    r"|can't\s+stand|cannot\s+stand|can\s+not\s+stand)\s+"
    r"|\bI(?:'m|\s+am)\s+not\s+(?:a\s+)?(?:big\s+|huge\s+)?fan\s+of\s+",
    _I,
)


def _like(s: _Sentence) -> Iterator[Candidate]:
    for match in _each(_LIKE, s):
        thing = _object(s, match, max_words=8, keep_lists=True)
        if thing:
            yield _candidate(f"User likes {third_person(thing)}", topics=["preferences"])


def _dislike(s: _Sentence) -> Iterator[Candidate]:
    # The negation inside this rule's own match is not a hedge: `_usable` only looks before it.
    for match in _each(_DISLIKE, s):
        thing = _object(s, match, max_words=8, keep_lists=True)
        if thing:
            yield _candidate(f"User dislikes {third_person(thing)}", topics=["preferences"])


_PREFER = re.compile(
    r"\bI\s+(?P<adverbs>(?:(?:really|also|much|generally|usually|definitely|still|now|actually|mostly)\s+)*)"
    r"prefer\s+",
    _I,
)
_SWITCHED = re.compile(
    r"\bI(?:'ve|\s+have)?\s+(?:(?:just|recently|finally|now|since)\s+)?switched\s+"
    r"(?:from\s+(?P<old>.{1,60}?)\s+)?to\s+",
    _I,
)
_NOW = re.compile(r"\b(?:now|nowadays|these\s+days|lately|from\s+now\s+on|anymore)\b", _I)
_COMPARED = re.compile(r"\s+(?:over|rather\s+than|instead\s+of|more\s+than|to)\s+", _I)
# "I prefer to walk" is an infinitive, not a comparison: there "to" does not split.
_COMPARED_NOT_TO = re.compile(r"\s+(?:over|rather\s+than|instead\s+of|more\s+than)\s+", _I)


def _preference_key(old: str) -> str:
    """A stable, tag-safe key for the thing a changed preference replaces ("the Dark mode" → "dark mode")."""
    words = re.sub(r"[^\w\s'+#-]", " ", old.lower()).split()
    while words and words[0] in ("a", "an", "the", "using", "my"):
        words = words[1:]
    return " ".join(words)[:40].strip()


def _preference(new: str, old: str, *, changed: bool) -> Candidate:
    text = f"User prefers {third_person(new)}" + (f" over {third_person(old)}" if old else "")
    slot = ""
    if changed:
        key = _preference_key(old) if old else ""
        slot = f"preference:{key}" if key else "preference"
    return _candidate(text, topics=["preferences"], slot=slot)


def _prefer(s: _Sentence) -> Iterator[Candidate]:
    for match in _each(_PREFER, s):
        clause = _BOUNDARY.split(s.text[match.end() :], maxsplit=1)[0]
        changed = any(_NOW.search(part) for part in (match["adverbs"], clause, s.text[: match.start()]))
        thing = _object(s, match, max_words=10)
        if not thing:
            continue
        compared = _COMPARED_NOT_TO if thing.lower().startswith("to ") else _COMPARED
        parts = [part.strip() for part in compared.split(thing, maxsplit=1)]
        new, old = parts[0], parts[1] if len(parts) > 1 else ""
        if new and not (old and _NOT_AN_OBJECT.match(old)):
            yield _preference(new, old, changed=changed)


def _switched(s: _Sentence) -> Iterator[Candidate]:
    for match in _each(_SWITCHED, s):
        new = _object(s, match, max_words=8)
        old = _strip_end(match["old"] or "")
        if new and not (old and _NOT_AN_OBJECT.match(old)):
            yield _preference(new, old, changed=True)


# Family members and pets: "I have a dog named Rex", "my sister is called Ana".
_PETS = _words(
    "dog cat puppy kitten hamster rabbit bunny parrot bird fish goldfish turtle tortoise horse pony "
    "guinea_pig snake lizard gecko ferret budgie chinchilla pig pet"
)
_RELATIVES = _words(
    "wife husband partner spouse boyfriend girlfriend fiance fiancé fiancee fiancée son daughter kid child "
    "baby mother mom mum father dad brother sister sibling twin grandmother grandma granny grandfather "
    "grandpa grandson granddaughter grandchild aunt uncle cousin niece nephew stepson stepdaughter "
    "stepmother stepfather stepbrother stepsister"
)
_IRREGULAR_PLURALS = {
    "child": "children",
    "grandchild": "grandchildren",
    "wife": "wives",
    "puppy": "puppies",
    "bunny": "bunnies",
    "pony": "ponies",
    "fish": "fish",
    "goldfish": "goldfish",
    "granny": "grannies",
}


def _noun_topics() -> dict[str, str]:
    """Every singular and plural form, lower-case with single spaces → "pets" | "family"."""
    topics: dict[str, str] = {}
    for topic, nouns in (("pets", _PETS), ("family", _RELATIVES)):
        for noun in nouns:
            word = noun.replace("_", " ")
            topics[word] = topic
            topics[_IRREGULAR_PLURALS.get(word, word + "s")] = topic
    return topics


_NOUN_TOPICS = _noun_topics()


def _noun_pattern(nouns: Iterable[str]) -> str:
    words = sorted(nouns, key=len, reverse=True)  # "goldfish" before "fish"
    return "|".join(r"\s+".join(re.escape(part) for part in w.replace("_", " ").split()) for w in words)


_HAVE = re.compile(
    r"\bI(?:\s+(?:also|still|now|already))?(?:\s+have(?:\s+got)?|'ve\s+got|\s+got)\s+"
    r"(?P<count>an?|one|two|three|four|five|six|\d{1,2})\s+(?:(?P<adj>[a-z-]+)\s+)?"
    rf"(?P<noun>{_noun_pattern(_NOUN_TOPICS)})"
    r"(?=$|[,.;:!]|\s+(?:named|called|and|who|that|which|but|too|at|in|with|living|whose|so|because|now|"
    r"also|since|as\s+well)\b)",
    _I,
)
_NAMED = re.compile(r"\s+(?P<verb>named|called)\s+", _I)


def _topic_of(noun: str) -> str:
    return _NOUN_TOPICS[" ".join(noun.lower().split())]


def _joined(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _have(s: _Sentence) -> Iterator[Candidate]:
    for match in _each(_HAVE, s):
        words = [match["count"], match["adj"], match["noun"]]
        text = "User has " + " ".join(w for w in words if w)
        names: list[str] = []
        named = _NAMED.match(s.text, match.end())
        if named:
            names = _names(s.text[named.end() :], capitalised=False, many=True)
            if names:
                text += f" {named['verb'].lower()} {_joined(names)}"
        yield _candidate(text, topics=[_topic_of(match["noun"])], entities=names)


_MY_RELATIVE = re.compile(
    r"\bmy\s+(?P<adj>(?:older|younger|little|big|baby|twin|elder|eldest|oldest|youngest|new|late|first|"
    r"second)\s+)?"
    rf"(?P<noun>{_noun_pattern(_PETS + _RELATIVES)})"
    r"(?P<how>'s\s+name\s+is|\s+is\s+(?:called|named)|\s+is)\s+",
    _I,
)
# After a bare "my sister is Ana" the name must end the clause: "my husband is Tom and…".
_NAME_ENDS = re.compile(r"\s*(?:$|[,;:.!]|\s(?:and|but|too|who|so|now)\b)", _I)


def _my_relative(s: _Sentence) -> Iterator[Candidate]:
    for match in _each(_MY_RELATIVE, s):
        how = " ".join(match["how"].lower().split())
        bare = how == "is"
        rest = s.text[match.end() :]
        names = _names(rest, capitalised=bare)
        if not names or (bare and not _NAME_ENDS.match(rest, len(names[0]))):
            continue
        verb = "is" if bare else "is called" if how.endswith("name is") else how
        who = f"{match['adj'] or ''}{match['noun']}"
        yield _candidate(f"User's {who} {verb} {names[0]}", topics=[_topic_of(match["noun"])], entities=names)


# Events: a first-person sentence with a resolvable date ("I went to Lisbon yesterday").
_FIRST_PERSON = re.compile(r"(?<![\w'])(?:i|i'm|i've|i'd|i'll|my|me|mine|myself)(?![\w'])", _I)
# Plans and wishes are not events: "I'd love to visit Rome next year", "I want to move next month".
_EVENT_HEDGE = re.compile(
    r"\b(?:maybe|perhaps|would|could|might|probably|hope|hoping|want|wanna|wants|wish)\b|'d\b", _I
)
_BARE_BEFORE = frozenset(_words("on by since until till from before after for of through between to as"))
_BARE_AFTER = frozenset(_words("is was will"))


def _dates_in(s: _Sentence) -> list[DateMention]:
    mentions = find_date_mentions(s.text, reference=s.reference, tense=s.tense)
    if _RECURRING.search(s.text):
        # "my birthday is May 3" recurs: giving it this year would invent a fact.
        mentions = [m for m in mentions if m.kind != "yearless"]
    return mentions


def _iso_in_place(text: str, mention: DateMention) -> str:
    """The replacement for one mention: "on 2026-11-23", or the bare date after a preposition."""
    iso = mention.day.isoformat()
    before = re.search(r"(\w+)\s*$", text[: mention.start])
    after = re.match(r"\s*(\w+)", text[mention.end :])
    if (before and before[1].lower() in _BARE_BEFORE) or (after and after[1].lower() in _BARE_AFTER):
        return iso
    return f"on {iso}"


def _with_iso_dates(text: str, mentions: Sequence[DateMention]) -> str:
    """`text` with each date expression replaced by its ISO date; a leading one moves to the end of a
    one-clause sentence ("Yesterday I went to Lisbon" → "I went to Lisbon on 2026-11-23")."""
    pieces: list[str] = []
    position = 0
    trailer = ""
    for mention in mentions:
        if mention.start == 0 and _iso_in_place(text, mention).startswith("on "):
            trailer = f" on {mention.day.isoformat()}"
            after = text[mention.end :]
            position = mention.end + len(after) - len(after.lstrip(" ,"))
            continue
        pieces.append(text[position : mention.start] + _iso_in_place(text, mention))
        position = mention.end
    pieces.append(text[position:])
    body = "".join(pieces).rstrip()
    if trailer and _BOUNDARY.search(body):
        # With several clauses the end would attach the date to the last one: keep it in front.
        return f"On {trailer.removeprefix(' on ')}, {body}"
    return body + trailer


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _statement(s: _Sentence, mentions: Sequence[DateMention] = ()) -> str:
    return _capitalised(third_person(_with_iso_dates(s.text, mentions)))


def _event(s: _Sentence) -> Iterator[Candidate]:
    if not _FIRST_PERSON.search(s.text) or _HYPOTHETICAL.search(s.text) or _EVENT_HEDGE.search(s.text):
        return
    mentions = _dates_in(s)
    if mentions:
        yield _candidate(
            _statement(s, mentions),
            topics=["events"],
            type_=MemoryType.EPISODIC,
            event_date=to_epoch(mentions[0].day),
        )


_RULES: tuple[Callable[[_Sentence], Iterable[Candidate]], ...] = (
    _name,
    _location,
    _job,
    _employer,
    _like,
    _dislike,
    _prefer,
    _switched,
    _have,
    _my_relative,
    _event,
)


# --- requests: "remember that …", "forget …" ------------------------------------------------------

_POLITE = (
    r"(?:(?:please|pls|kindly)\s+|(?:can|could|would|will)\s+you\s+(?:please\s+)?|i\s+want\s+you\s+to\s+"
    r"|i'd\s+like\s+you\s+to\s+|make\s+sure\s+(?:to\s+|you\s+)?)?"
)
_REMEMBER = re.compile(
    rf"^{_POLITE}(?:please\s+)?(?:remember|don't\s+forget|do\s+not\s+forget|never\s+forget|keep\s+in\s+mind)"
    r"(?:\s+(?:that|this))?\s*[:,-]?\s+(?P<what>.+)$",
    _I,
)
_FORGET = re.compile(
    rf"^{_POLITE}(?:please\s+)?(?:forget|stop\s+remembering)(?:\s+(?:about|that))?\s*[:,-]?\s+(?P<what>.+)$",
    _I,
)
# "can you remember where I live" asks; it does not tell.
_ASKS = re.compile(r"^(?:where|what|who|when|how|why|which|if|whether)\b", _I)
# An instruction about how the assistant should behave, possibly after a condition ("if I ask, …").
_PROCEDURE = re.compile(
    r"^(?:(?:if|when|whenever)\s[^,]+,\s*)?(?:(?:you\s+(?:should|must|need\s+to|have\s+to)|please)\s+)?"
    r"(?:always|never|reply|respond|answer|write|speak|talk|call\s+me|address\s+me|refer\s+to\s+me|use|"
    r"avoid|don't|do\s+not|keep\s+(?:your|it|answers|replies)|be)\b",
    _I,
)
_NOTHING_IN_PARTICULAR = re.compile(
    r"^(?:it|that|this|everything|anything|all|all\s+of\s+(?:it|that|this)|all\s+that|about\s+it|them)$", _I
)
_WHAT_I_SAID = re.compile(
    r"^what\s+i\s+(?:just\s+)?(?:said|told\s+you|mentioned|wrote)(?:\s+(?:about|earlier|before))?\s*", _I
)


def _remember(s: _Sentence) -> list[Candidate]:
    what = s.text
    infinitive = what.lower().startswith("to ")
    if infinitive:
        s = _sentence(what[3:], s.reference)
        what = s.text
    facts = [c for rule in _RULES for c in rule(s)]
    if _PROCEDURE.match(what):
        procedure = _candidate(_statement(s), topics=["remembered"], type_=MemoryType.PROCEDURAL)
        return [*facts, procedure]
    # "remember to buy milk" is a reminder (not kept), "remember my birthday" a fragment.
    if infinitive or (len(what.split()) < 3 and not _FIRST_PERSON.match(what)):
        return facts
    mentions = _dates_in(s)
    if not mentions:
        return [*facts, _candidate(_statement(s), topics=["remembered"])]
    event = _candidate(
        _statement(s, mentions),
        topics=["remembered"],
        type_=MemoryType.EPISODIC,
        event_date=to_epoch(mentions[0].day),
    )
    return [*facts, event]


def _forget(s: _Sentence) -> list[Candidate]:
    what = _strip_end(_WHAT_I_SAID.sub("", s.text))
    if not what or _NOTHING_IN_PARTICULAR.match(what):
        return []  # nothing specific to forget; deleting "the most similar memory" would be a guess
    s = replace(s, text=what)
    return [_candidate(_statement(s, _dates_in(s)), topics=[], kind=CandidateKind.FORGET)]


# --- entry point --------------------------------------------------------------------------------


def _sentence_candidates(raw: str, reference: datetime) -> list[Candidate]:
    text = _strip_end(_MARKERS.sub("", raw))
    if not text or len(text) > MAX_SENTENCE_CHARS:
        return []
    forget = _FORGET.match(text)
    if forget:
        return _forget(_sentence(forget["what"], reference))
    remember = _REMEMBER.match(text)
    if remember and (_PROCEDURE.match(remember["what"]) or not _ASKS.match(remember["what"])):
        return _remember(_sentence(remember["what"], reference))
    if raw.rstrip().endswith("?") or _QUESTION.match(text):
        return []
    s = _sentence(text, reference)
    return [candidate for rule in _RULES for candidate in rule(s)]


def _union(first: Sequence[str], second: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def _add(found: dict[str, Candidate], candidate: Candidate, turn_id: str) -> None:
    """Add `candidate`, folding it into an earlier one with the same text (never two identical texts)."""
    key = candidate.text.casefold()
    candidate = replace(candidate, source_turn_ids=[turn_id] if turn_id else [])
    earlier = found.pop(key, None)
    if earlier is None or earlier.kind != candidate.kind:
        found[key] = candidate  # a later "forget" of the same text wins over an earlier "remember"
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
    """Candidates from the explicit statements in the user's messages, in the order they were said."""
    found: dict[str, Candidate] = {}
    for message in messages:
        if message.role != "user":
            continue  # the assistant's words are never evidence about the user
        reference = datetime.fromtimestamp(message.at, tz=UTC)
        for sentence in _split_sentences(message.content):
            for candidate in _sentence_candidates(sentence, reference):
                _add(found, candidate, message.turn_id)
    return list(found.values())
