"""The language toolkit of the offline rules: chat spelling tidied, sentences and clauses, third
person, the object of a statement, names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from memory.extraction.dates import Tense, find_date_mentions
from memory.extraction.rules.lexicon import ADVERBS, words

CI = re.IGNORECASE

# --- chat spelling ---------------------------------------------------------------------------------

# Informal spellings that change what a rule sees ("im a nurse", "dont like"), written out.
_SPELLINGS = {
    "im": "I'm",
    "ive": "I've",
    "iam": "I am",
    "dont": "don't",
    "doesnt": "doesn't",
    "didnt": "didn't",
    "cant": "can't",
    "isnt": "isn't",
    "wasnt": "wasn't",
    "havent": "haven't",
    "hasnt": "hasn't",
    "wouldnt": "wouldn't",
    "couldnt": "couldn't",
    "shouldnt": "shouldn't",
    "arent": "aren't",
    "thats": "that's",
    "whats": "what's",
    "theyre": "they're",
    "youre": "you're",
    "bc": "because",
    "bcs": "because",
    "cuz": "because",
    "coz": "because",
    "pls": "please",
    "plz": "please",
    "rn": "right now",
    "atm": "at the moment",
    "yrs": "years",
    "yr": "year",
    "mos": "months",
    "fav": "favourite",
    "fave": "favourite",
    "favorite": "favourite",
    "favourit": "favourite",
    "fav.": "favourite",
    "w/": "with",
    "&": "and",
    "wk": "week",
    "wks": "weeks",
    "tmr": "tomorrow",
    "tmrw": "tomorrow",
    "tomoz": "tomorrow",
    "2moro": "tomorrow",
    "originaly": "originally",
    "smth": "something",
}
_SPELLING = re.compile(r"(?<![\w'])(" + "|".join(re.escape(k) for k in _SPELLINGS) + r")(?![\w'])", CI)
# Emoji, pictographs and other symbols: they end a thought in chat but confuse the rules.
_SYMBOLS = re.compile("[\U0001f000-\U0001ffff\u2600-\u27bf\u2300-\u23ff\u2b00-\u2bff\ufe0f\u200d]+")
# Fillers that carry nothing ("lol", "haha", "tbh") wherever they stand.
_FILLERS = re.compile(
    r"(?<![\w'])(?:lol+|lmao|rofl|haha+|hehe+|ahaha+|tbh|tbf|ngl|imo|imho|omg|omfg|smh|fyi|btw|jk|xd|:\)|:\(|:d|:p)"
    r"(?![\w'])",
    CI,
)


_OVERLONG = re.compile(r"\S{41,}")


def _spelling(match: re.Match[str]) -> str:
    word = match[0]
    out = _SPELLINGS[word.lower()]
    if word.lower() == "im" and word == "IM":  # shouting "IM" is still "I'm"
        return "I'm"
    return out


def normalise(text: str) -> str:
    """Chat as the rules read it: straight quotes, symbols as sentence ends, informal spellings
    written out ("im" → "I'm"), fillers ("lol", "tbh") dropped."""
    # White space of every kind first, as one space (or one line break), and no word longer than a
    # word can be: every later pattern then scans plain text in linear time.
    text = re.sub(r"[^\S\n]+", " ", text)
    text = re.sub(r"\s*\n\s*", "\n", text)
    text = _OVERLONG.sub("", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = _SYMBOLS.sub(". ", text)
    text = _FILLERS.sub("", text)
    text = _SPELLING.sub(_spelling, text)
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    text = re.sub(r"([!?.])[!?.]+", r"\1", text)
    return re.sub(r"[ \t]+", " ", text).strip()


# --- sentences ------------------------------------------------------------------------------------

_BREAK = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*|;\s+|\s+[-\u2013\u2014]\s+|\s*\.\.\.\s*|\s*\u2026\s*")
# A full stop after these is an abbreviation, not the end of a sentence.
_ABBREVIATION = re.compile(
    r"\b(?:dr|mr|mrs|ms|st|prof|jr|sr|vs|etc|e\.g|i\.e|mt|ft|no|approx|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.$",
    CI,
)
_GREETING = (
    r"oh|ok|okay|hey|hi|hiya|hello|heya|yo|howdy|morning|evening|well|so|and|also|anyway|anyways|by\s+the\s+way|"
    r"just\s+so\s+you\s+know|for\s+the\s+record|yeah|yes|yep|yup|no|nope|alright|right|plus|but|ugh|wow|welp|"
    r"hmm+|um+|uh+|ah|aah|oof|phew|so\s+yeah|guess\s+what|fun\s+fact|big\s+news|good\s+news|news|update|"
    r"quick\s+update|random\s+but|funny\s+thing(?:\s+is)?|for\s+context|context|first|firstly|also\s+fyi|"
    r"oh\s+and|oh\s+also|and\s+also|honestly|seriously|basically|actually|anyway|thanks|thank\s+you|cheers|"
    r"sorry|sound|mint|cool|nice|great|awesome|perfect|lovely|true|totally|realistically|apparently|luckily|"
    r"unfortunately|fortunately|sadly|obviously|clearly|personally|technically|frankly|funnily\s+enough|"
    r"surprisingly|interestingly|thankfully|ideally|currently|recently|lately|usually|normally|generally|"
    r"typically|mostly|btw|fyi|ps|p\.s\.|also\s+btw|last\s+thing|one\s+more\s+thing|quick\s+one|context"
)
MARKERS = re.compile(rf"^(?:(?:{_GREETING})(?![\w'])[\s,:!.-]*)+", CI)
QUESTION = re.compile(
    r"^(?:(?:what|where|who|whom|whose|when|why|how|which)(?:'s|\s+(?:is|are|was|were|do|does|did|can|could|would|"
    r"should|will|have|has|had|am|much|many|long|often|old|about|kind|sort|type|else)\b)"
    r"|(?:do|does|did|is|are|am|was|were|can|could|would|will|should|shall|may|might|must|have|has|had)(?:n't)?\s+"
    r"(?:you|i|we|they|he|she|it|there|my|your|the|this|that|anyone|someone|somebody|any)\b"
    r"|any\s+(?:ideas|tips|suggestions|advice|thoughts|recommendations))",
    CI,
)


def is_question(text: str) -> bool:
    """Whether a message asks something (ends with "?" or opens like a question after a greeting),
    as the rules extractor reads a sentence."""
    plain = MARKERS.sub("", text.strip())
    return plain.rstrip().endswith("?") or QUESTION.match(plain) is not None


# The user speaking of themselves: a clause with one of these tells something about them.
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|im|ive|me|my|mine|myself|we|we're|we've|our|us)\b", CI)


def only_asks(text: str) -> bool:
    """Whether a message asks and tells nothing: every sentence is a question or a greeting-sized
    word or two, and no clause before a question's last one speaks of the user. "What's my dog
    called?" only asks; "thanks. on weekends I go ice fishing with my brother, are there good lakes
    near Poznań?" tells a hobby before it asks."""
    for sentence in split_sentences(text):
        plain = MARKERS.sub("", sentence).strip()
        if len(plain.split()) < 3:
            continue
        if not is_question(plain):
            return False
        clauses = [c.strip() for c in CLAUSE.split(plain) if c.strip()]
        if any(_FIRST_PERSON.search(c) and not QUESTION.match(c) for c in clauses[:-1]):
            return False
    return True


# Imagined situations anywhere before a statement make it not a statement.
HYPOTHETICAL = re.compile(
    r"\b(?:if|suppose|supposing|imagine|imagining|hypothetically|pretend|pretending|let's\s+say|"
    r"lets\s+say|whether|wish(?!\s+me\s+luck)|unless|in\s+case|dreamt|dreamed|dream)\b",
    CI,
)
# Negation or hedging in the same clause ("I don't think I like it", "maybe I live in…").
HEDGE = re.compile(r"\b(?:not|never|maybe|perhaps|would|could|might|wonder|guess|probably)\b|n't\b", CI)
CLAUSE = re.compile(r"[,;:]|\s(?:but|and|because|so)\s", CI)
RECURRING = re.compile(
    r"\b(?:birthday|birthdays|bday|anniversary|every|each|annually|yearly|weekly|monthly|daily)\b", CI
)
_FUTURE = re.compile(
    r"\b(?:will|shall|going\s+to|gonna|plan|planning|planned|appointment|scheduled|upcoming|due|turns|"
    r"turning|next|coming|booked|'re\s+\w+ing|'m\s+\w+ing|am\s+\w+ing|are\s+\w+ing|is\s+\w+ing)\b|'ll\b",
    CI,
)
_PAST = re.compile(
    r"\b(?:was|were|went|did|had|got|came|left|met|saw|visited|moved|arrived|returned|happened|"
    r"graduated|married|born|started|finished|bought|flew|drove|ago|yesterday)\b",
    CI,
)


@dataclass(frozen=True)
class Sentence:
    """One statement of a user message, ready for the rules."""

    text: str  # discourse markers, request wording and final punctuation removed
    reference: datetime  # when it was said (UTC); relative dates resolve against it
    tense: Tense  # which way yearless dates and "on <weekday>" lean


def split_sentences(text: str) -> list[str]:
    pieces = [p for p in _BREAK.split(normalise(text)) if p.strip()]
    sentences: list[str] = []
    for piece in pieces:
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return [" ".join(s.split()) for s in sentences]


# Chat drops the subject: "been knitting for years", "got a kitten", "studying law at UCL", "vegan.",
# "allergic to cashews too". The rules read these with the "I" put back.
_DROPPED = (
    (re.compile(r"^been\s+", CI), "I've "),
    (
        re.compile(
            r"^(?:(?:just|finally|recently|also|so|then)\s+)?(?:bought|got\s+(?:a|an|my|me|two|three|into|engaged|married|"
            r"promoted|diagnosed)|moved|started|finished|adopted|rescued|quit|joined|graduated|retired|switched|sold|"
            r"left|treated\s+myself|upgraded|picked\s+up|took\s+up|turned|inherited|built|opened)\b",
            CI,
        ),
        "I ",
    ),
    (
        re.compile(
            r"^(?:studying|working|living|training|learning|teaching|doing\s+(?:a|my)|starting\s+(?:at|as|a|my)|"
            r"joining|running\s+(?:a|my|the)|allergic|intolerant|vegan|vegetarian|veggie|pescatarian|diabetic|sober|"
            r"teetotal|coeliac|celiac|lactose|gluten|pregnant|married|divorced|retired|engaged|based\s+in|from\s+(?-i:[A-Z]))\b",
            CI,
        ),
        "I'm ",
    ),
    (re.compile(r"^(?:have|own)\s+(?:a|an|two|three|four|\d+)\s", CI), "I "),
)


def with_subject(text: str) -> str:
    """`text` with the "I" a chat message dropped put back (unchanged when it has one)."""
    for pattern, subject in _DROPPED:
        if pattern.match(text):
            return subject + text[0].lower() + text[1:] if not text.startswith("I") else subject + text
    return text


def typed_in_lower_case(text: str) -> bool:
    """Whether the user typed without capitals (then names are lower case too): "im ioana"."""
    without_i = re.sub(r"(?<![\w'])I(?=$|[\s',.!?])", "i", text)
    return without_i == without_i.lower()


def strip_end(text: str) -> str:
    return text.strip().rstrip(".!?\u2026;:,").strip().strip("\"'()").strip()


def tense(text: str) -> Tense:
    """Which way an undated day leans. People mostly mention yearless dates ahead of them ("my exam
    is on 18 December"), so anything without a past cue leans to the future."""
    past = bool(_PAST.search(text))
    if past and not _FUTURE.search(text):
        return "past"
    return "future" if not past else "any"


def sentence(text: str, reference: datetime) -> Sentence:
    cleaned = strip_end(text)
    return Sentence(cleaned, reference, tense(cleaned))


def usable(s: Sentence, match: re.Match[str]) -> bool:
    """False when the matched statement is imagined, negated or hedged."""
    before = s.text[: match.start()]
    if HYPOTHETICAL.search(before):
        return False
    return not HEDGE.search(CLAUSE.split(before)[-1])


def each(regex: re.Pattern[str], s: Sentence) -> Iterator[re.Match[str]]:
    return (m for m in regex.finditer(s.text) if usable(s, m))


# --- third person ---------------------------------------------------------------------------------

_PERSON = re.compile(
    r"(?<![\w'])(?:"
    r"(?P<contracted>i'm|i've|i'd|i'll|we're|we've|we'd|we'll)"
    rf"|(?P<i>i|we)(?P<tail>(?:\s+(?:{ADVERBS}))*\s+(?P<verb>[a-z]+(?:n't)?))?"
    r"|(?P<word>my|mine|myself|me|our|ours|ourselves|us)"
    r")(?![\w']|\.\w)",
    CI,
)
_CONTRACTIONS = {
    "i'm": "User is",
    "i've": "User has",
    "i'd": "User would",
    "i'll": "User will",
    "we're": "User is",
    "we've": "User has",
    "we'd": "User would",
    "we'll": "User will",
}
_WORDS = {
    "my": "User's",
    "mine": "User's",
    "myself": "User",
    "me": "User",
    "our": "User's",
    "ours": "User's",
    "ourselves": "User",
    "us": "User",
}
_IRREGULAR = {
    "am": "is",
    "are": "is",
    "have": "has",
    "do": "does",
    "go": "goes",
    "don't": "doesn't",
    "haven't": "hasn't",
    "aren't": "isn't",
    "were": "was",
}
# Words after "I" that take no -s: modals, past forms and words that are not verbs at all.
_UNCHANGED = words(
    "can could will would should shall may might must did was had got went came saw met made took "
    "left bought began found felt gave knew lost paid put read said sent spent told thought wrote "
    "won flew drove rode sat stood slept taught caught brought built heard held kept led meant sold "
    "spoke swam threw understood woke wore broke chose fell forgot hit hurt let quit set cut became "
    "grew ran ate drank dug hung shot shut spun struck stuck swung tore wove wept "
    "myself too alone personally and or but the a an in on at who that as then if so to not both "
    "all together again here there ourselves"
) | words(ADVERBS.replace("|", " ").replace(r"\s+", "_"))


def third_person_verb(verb: str) -> str:
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
    r"(?:^|[,;:]\s*|\b(?:that|because|when|while|since)\s+)(?:my\s+\w+|[A-Z]\w*|the\s+\w+|both|me)"
    r"(?:\s+\w+)?\s+(?:and|&)\s+$",
    CI,
)


def _person_replacement(match: re.Match[str]) -> str:
    if match["contracted"]:
        rest = match.string[match.end() :]
        if match["contracted"].lower() in ("i'd", "we'd") and re.match(r"\s+been\b", rest):
            return "User had"  # "I'd been" is "I had been", not "I would been"
        return _CONTRACTIONS[match["contracted"].lower()]
    if match["word"]:
        word = match["word"]
        if word == "My" and re.match(r"\s+[A-Z]", match.string[match.end() :]) and match.start() > 0:
            return word  # a title inside a sentence: "My Girl by the Temptations"
        return _WORDS[word.lower()]
    if not match["verb"]:
        return "User"
    before = match.string[: match.start()]
    tail = match["tail"]
    if _PLURAL_SUBJECT.search(before):
        return "User" + tail  # "my wife and I live": plural subject, the verb stays as it is
    return "User" + tail[: -len(match["verb"])] + third_person_verb(match["verb"])


def third_person(text: str) -> str:
    """Rewrite the user's first person as statements about "User" (I/we → User, my/our → User's, …).

    "I" with a present-tense verb gets the verb's third-person form ("I live" → "User lives"); past
    forms and modals stay ("I went" → "User went"). Only simple cases: anything else is left as said.
    """
    text = re.sub(
        r"(?<![\w'])me\s+and\s+(?=my\s)", "", text, flags=CI
    )  # "me and my wife live" → "my wife live"
    return _PERSON.sub(_person_replacement, text)


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- objects ("Porto", "hiking", "a nurse") -------------------------------------------------------

BOUNDARY = re.compile(
    # A comma ends the clause, unless it opens a short aside closed by another ("Toronto, in
    # Scarborough, and…", "medicine, amlodipine, every morning").
    r"\s*,(?!\s*[\w'-]+(?:\s+[\w'-]+){0,2}\s*,)|\s*[;:()]|\s+(?:but|because|cause|since|so|although|though|while|whereas|unless|until|when|"
    r"where|which|who|if|except|which|cos|means|meaning)\b"
    r"|\s+(?:and|or|&)\s+(?=(?:i|i'm|i've|i'd|i'll|my|we|we're|we've|you|he|she|it|they|it's|there|that|"
    r"this|then|now|still|also|am|have|had|was|been|is|are|can|will|love|like|hate|got|get)\b)",
    CI,
)
_MONTH_NAMES = "january|february|march|april|may|june|july|august|september|october|november|december"
_TRAILING_WHEN = re.compile(
    rf"\s+(?:in|back\s+in|around|since)\s+(?:\d{{4}}|{_MONTH_NAMES}|the\s+(?:summer|spring|winter|fall|autumn))\b.*$",
    CI,
)
TRAILING_WORDS = re.compile(
    r"(?:\s+(?:now|anymore|any\s+more|currently|nowadays|these\s+days|at\s+the\s+moment|right\s+now|"
    r"for\s+now|too|also|as\s+well|a\s+lot|very\s+much|so\s+much|really|again|lately|though|instead|"
    r"then|actually|honestly|please|btw|obviously|haha|lol|ok|okay|btw|anyway|already|yet|here|there|originally|"
    r"of\s+course|in\s+case\s+you\s+(?:were\s+)?(?:wondering|asking)|just\s+so\s+you\s+know|fyi))+$",
    CI,
)
# An object that is a pronoun or a clause is not a fact about the user ("I love it", "I like that…").
NOT_AN_OBJECT = re.compile(
    r"^(?:it|its|it's|that|this|these|those|you|your|them|him|her|us|what|how|when|where|which|who|"
    r"whom|there|here|one|so|very|much|not|being|to\s+be|doing|something|anything|everything|nothing|"
    r"stuff|things|a\s+lot|lots|the\s+idea|the\s+fact|when|all\s+of)\b",
    CI,
)
I_SUBJECT = re.compile(r"(?<![\w'])(?:i|i'm|i've|i'd|i'll)(?![\w'])", CI)
SUBJECT = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|we|you|he|she|it|they)\b", CI)


def comma_list(rest: str) -> str | None:
    """ "hiking, swimming and cycling": a short list, kept whole instead of cut at the first comma."""
    parts = [p.strip() for p in strip_end(rest).split(",")]
    if len(parts) < 2 or not re.search(r"(?:^|\s)(?:and|or)\s", parts[-1], CI):
        return None
    if any(not p or len(p.split()) > 4 or SUBJECT.search(p) for p in parts):
        return None
    return ", ".join(parts)


_OBJECT_WINDOW = 200


def clause_end(rest: str) -> str:
    """`rest` up to the end of its clause."""
    return BOUNDARY.split(rest, maxsplit=1)[0]


def trimmed(obj: str) -> str:
    obj = _TRAILING_WHEN.sub("", obj)
    obj = TRAILING_WORDS.sub("", strip_end(obj))
    return strip_end(obj)


def object_after(
    s: Sentence, end: int, *, stops: str = "", max_words: int = 6, keep_lists: bool = False
) -> str:
    """The object starting at `end`, up to the end of its clause, without trailing dates and fillers."""
    # Objects are a few words: looking further only costs time (and "no clause end in sight" means
    # the object is too long anyway).
    rest = s.text[end : end + _OBJECT_WINDOW]
    if len(rest) == _OBJECT_WINDOW and not BOUNDARY.search(rest):
        return ""
    listed = comma_list(rest) if keep_lists else None
    if listed is not None:
        obj = listed
    else:
        obj = clause_end(rest)
        if stops:
            obj = re.split(rf"\s+(?:{stops})\b", obj, maxsplit=1, flags=CI)[0]
    dates = find_date_mentions(obj, reference=s.reference)
    if dates:
        obj = obj[: dates[0].start]
    obj = trimmed(obj)
    # An object with its own "I" is a clause ("I like when I…"), not a thing.
    if not obj or NOT_AN_OBJECT.match(obj) or I_SUBJECT.search(obj) or len(obj.split()) > max_words:
        return ""
    return obj


# --- names ----------------------------------------------------------------------------------------

_NAME_TOKEN = re.compile(r"^[^\W\d_][\w'.-]*$")
NOT_A_NAME = words(
    "and but or so i i'm im by the a an not just actually btw though please from too now here there "
    "if because since when as in at on to for with lol haha thanks thank ok okay really also still "
    "kind sort very is was obviously anyway anyways what who you your me my it that this tired fine "
    "sorry happy sure glad back new home done ready going trying looking here good great well busy "
    "a bit excited nervous stressed curious wondering thinking planning hoping afraid scared allergic "
    "vegan vegetarian married single retired pregnant officially finally currently originally also "
    "based living working studying learning from of into over about like gonna literally basically "
    "he she they we him her them his our their its one two three four five six seven eight nine ten "
    "called named my name is are were has have had got bit little lot big huge total complete "
    "mr mrs ms dr prof"
) - {"mr", "mrs", "ms", "dr", "prof"}
_TITLES = words("dr mr mrs ms prof")


def names(rest: str, *, capitalised: bool, many: bool = False) -> list[str]:
    """The name(s) at the start of `rest`: up to 3 capitalised words each ("Anna Maria"), or one
    lower-case word when the user types in lower case; with `many`, a list joined by "and"/","."""
    found: list[str] = []
    current: list[str] = []
    for raw in rest[:200].split():  # a few names of a few words each; never the whole message
        token = re.sub(r"'s$", "", raw.rstrip(".,!?;:)").lstrip("("))
        ends_clause = token != raw.lstrip("(") and not (raw.endswith(".") and token.lower() in _TITLES)
        lower = token.lower()
        if current and lower in ("and", "&") and many and not ends_clause:
            found.append(" ".join(current))
            current = []
            continue
        if many and current and re.fullmatch(r"\(?\d{1,3}\)?,?", raw):
            continue  # "Chloe 15 and Megan 12", "Manaia (8) and Kahu (5)": ages between the names
        if not _NAME_TOKEN.match(token) or lower in NOT_A_NAME:
            break
        upper = token[0].isupper()
        if (capitalised and not upper) or (current and not (upper and current[0][0].isupper())):
            break
        current.append(token + "." if token.lower() in _TITLES and raw.endswith(".") else token)
        if ends_clause and not (many and raw.endswith(",")):
            break
        if raw.endswith(","):
            found.append(" ".join(current))
            current = []
        elif len(current) == 3 or not upper:
            found.append(" ".join(current))
            current = []
            if not many:
                break
    if current:
        found.append(" ".join(current))
    return found if many else found[:1]


def joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
