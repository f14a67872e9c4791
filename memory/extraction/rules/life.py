"""Rules about the user's life: work and study, places, health and diet, likes and favourites,
changes ("I switched from coffee to tea", "I quit smoking")."""

from __future__ import annotations

import re
from collections.abc import Iterator

from memory.extraction.rules.found import Found, fact
from memory.extraction.rules.lexicon import TRAITS, TRANSIENT_STATES, is_job, words
from memory.extraction.rules.text import (
    CI,
    NOT_AN_OBJECT,
    Sentence,
    capitalised,
    clause_end,
    each,
    object_after,
    strip_end,
    third_person,
    trimmed,
    typed_in_lower_case,
)
from memory.extraction.types import CandidateKind

_ADV = (
    r"(?:(?:currently|now|still|also|actually|officially|finally|just|already|proudly|basically|really)\s+)*"
)

# --- work and study -------------------------------------------------------------------------------

_WORK_AS = re.compile(
    rf"\bI\s+{_ADV}work\s+as\s+|\bI(?:'m|\s+am)\s+{_ADV}working\s+as\s+"
    r"|\bmy\s+job\s+is\s+(?=an?\s)"  # "my job is a nurse", but not "my job is boring"
    r"|\bmy\s+(?:profession|occupation|job\s+title|role)\s+is\s+"
    r"|(?:\bI\s+|^)(?:just\s+|recently\s+|finally\s+)?(?:started|began)\s+(?:(?:this|last)\s+\w+\s+|today\s+|yesterday\s+)?(?:work(?:ing)?\s+)?as\s+"
    r"|\b(?:they|he|she)\s+(?:promoted|made)\s+me\s+(?:to\s+)?|\bI\s+(?:got|was)\s+promoted\s+to\s+",
    CI,
)
# "I'm a nurse at St. Mary's", "I'm an ICU nurse", "being a pharmacist is chaos", "I'm sous-chef at…"
_I_AM_A = re.compile(
    rf"\bI(?:'m|\s+am|'ve\s+been|\s+have\s+been|\s+was)\s+{_ADV}(?:an?\s+)|(?:^|\s)being\s+an?\s+"
    r"|,\s*an?\s+(?=[\w-]+\s+(?:in|at|from)\b)|(?:^|,\s*)as\s+an?\s+(?=[^,]{2,40},)",
    CI,
)
_I_AM_BARE_JOB = re.compile(rf"\bI(?:'m|\s+am)\s+{_ADV}(?=[\w-]+(?:\s+[\w-]+)?\s+(?:at|in|for|with)\s)", CI)
_ROLE_STOPS = (
    r"at|for|in|with|since|on|from|by\s+profession|by|who|and|but|so|because|which|means|is|was|doing|here|during|"
    r"throughout|these|this|now|for|to|near|around|all|over|when|while|right|though|based"
)
_WORK_PLACE = re.compile(r"^\s+(?P<prep>at|for|in|with)\s+(?P<org>[^,;]{2,60})", CI)
_WORK_AT = re.compile(
    rf"\bI(?:'m|\s+am)?\s+{_ADV}(?P<verb>work|working|do|run|manage|lead|head|coordinate|handle)"
    r"(?:\s+(?P<what>[\w-]+(?:\s+[\w-]+){0,3}?))?\s+(?P<prep>at|for)\s+",
    CI,
)
# "I work at home", "I work for myself": not an employer.
_NOT_AN_EMPLOYER = re.compile(
    r"^(?:home|night|nights|weekends?|myself|me|a\s+living|free|fun|least|once|times?|first|money|"
    r"the\s+moment|the\s+weekends?|the\s+same\s+place|all|it|this|that|them|you)\b",
    CI,
)
_STARTING_AT = re.compile(
    r"\bI(?:'m|\s+am)?\s+(?:(?:just|finally|officially)\s+)?(?:starting|started|joining|joined|beginning|begin|start)"
    r"(?:\s+(?:a\s+new\s+job|work|my\s+new\s+job))?\s+(?:at|with)\s+"
    r"|\bI\s+(?:just\s+|finally\s+)?(?:got|landed|found)\s+(?:a|the|my)\s+(?:new\s+|first\s+|part-time\s+)?job\s+"
    r"(?:at|with)\s+",
    CI,
)
_AS_ROLE = re.compile(
    r"\bas\s+(?:an?\s+)?(?P<role>[\w-]+(?:\s+[\w-]+){0,3}?)(?=$|[,.;!]|\s+(?:and|but|so|from|on|next|this|in)\b)",
    CI,
)
_TEACH = re.compile(rf"\bI\s+{_ADV}(?:teach|lecture\s+in|tutor)\s+", CI)
_RUN_BUSINESS = re.compile(
    rf"\bI\s+{_ADV}(?:run|own|have|manage|opened|started)\s+(?P<what>(?:an?|my\s+own|the|our)\s+(?:[\w'-]+\s+){{0,3}}?"
    r"(?:shop|bookshop|bakery|cafe|café|coffee\s+shop|restaurant|bar|pub|business|company|startup|studio|salon|"
    r"farm|clinic|practice|store|agency|firm|gym|hotel|b&b|bnb|food\s+truck|stall|boutique|brewery|winery|"
    r"garage|workshop|nursery|daycare|school|charity|consultancy|channel|podcast|blog))\b",
    CI,
)
_STUDY = re.compile(
    rf"\bI(?:'m|\s+am)\s+{_ADV}(?:studying|doing\s+(?:a|my)\s+(?:phd|masters?|master's|degree|bachelor'?s?|ba|bsc|msc|ma|mba)"
    r"(?:\s+in)?|in\s+my\s+(?:first|second|third|fourth|fifth|final|last|\d(?:st|nd|rd|th))\s+year\s+(?:of|at)|a\s+student\s+(?:at|of))\s+"
    rf"|\bI\s+{_ADV}study\s+",
    CI,
)


def _role_fact(role: str, where: re.Match[str] | None, span: tuple[int, int]) -> Found | None:
    role = trimmed(role)
    if not role or not is_job(role) or len(role.split()) > 5:
        return None
    article = "" if re.match(r"(?:an?|the)\s", role, CI) else ("an " if role[:1].lower() in "aeiou" else "a ")
    text = f"User works as {article}{third_person(role)}"
    entities: list[str] = []
    if where:
        org = trimmed(clause_end(where["org"]))
        org = re.split(r"\s+(?:and|but|so|since|for|where|because)\s", org, maxsplit=1, flags=CI)[0]
        if org and not _NOT_AN_EMPLOYER.match(org) and len(org.split()) <= 8:
            text += f" {where['prep'].lower()} {third_person(org)}"
            entities.append(org)
    return fact(text, span=span, topics=["work"], entities=entities, slot="job")


def work(s: Sentence) -> Iterator[Found]:
    for regex in (_WORK_AS, _I_AM_A, _I_AM_BARE_JOB):
        for match in each(regex, s):
            rest = s.text[match.end() :]
            role = re.split(rf"\s+(?:{_ROLE_STOPS})\b|[,;:]", rest, maxsplit=1, flags=CI)[0]
            where = _WORK_PLACE.match(rest[len(role) :])
            found = _role_fact(
                role, where, (match.start(), match.end() + len(role) + (where.end() if where else 0))
            )
            if found:
                yield found
    for match in each(_WORK_AT, s):
        employer = object_after(
            s,
            match.end(),
            stops="as|since|for|with|on|from|to|doing|because|where|here|in\\s+the|near",
            max_words=8,
        )
        if employer and not _NOT_AN_EMPLOYER.match(employer):
            verb = match["verb"].lower()
            if verb not in ("work", "working") and not match["what"]:
                continue
            what = (
                f" {third_person(match['what'])}" if match["what"] and match["what"].lower() != "as" else ""
            )
            does = "works" if verb in ("work", "working") else third_person(f"I {verb}")[5:]
            yield fact(
                f"User {does}{what} {match['prep'].lower()} {third_person(employer)}",
                span=(match.start(), match.end() + len(employer)),
                topics=["work"],
                entities=[employer],
                slot="employer",
            )
    for match in each(_STARTING_AT, s):
        org = object_after(
            s, match.end(), stops="on|next|this|as|in|from|starting|tomorrow|today|and|but|after", max_words=6
        )
        if not org or _NOT_AN_EMPLOYER.match(org):
            continue
        role = _AS_ROLE.search(s.text, match.end())
        job = role["role"] if role and is_job(role["role"]) else ""
        if job:
            article = "an" if job[:1].lower() in "aeiou" else "a"
            text, slot = f"User works as {article} {third_person(job)} at {third_person(org)}", "job"
        else:
            text, slot = f"User works at {third_person(org)}", "employer"
        yield fact(
            text, span=(match.start(), match.end() + len(org)), topics=["work"], entities=[org], slot=slot
        )
    for match in each(_TEACH, s):
        what = object_after(s, match.end(), stops="because|so|which|and|but", max_words=12)
        if what:
            yield fact(
                f"User teaches {third_person(what)}",
                span=(match.start(), match.end() + len(what)),
                topics=["work"],
                slot="job",
            )
    for match in each(_RUN_BUSINESS, s):
        rest = strip_end(clause_end(s.text[match.start() :]))
        yield fact(
            capitalised(third_person(rest)),
            span=(match.start(), match.start() + len(rest)),
            topics=["work"],
            slot="job",
        )
    for match in each(_STUDY, s):
        rest = strip_end(clause_end(s.text[match.start() :]))
        if len(rest.split()) <= 16:
            yield fact(
                capitalised(third_person(rest)),
                span=(match.start(), match.start() + len(rest)),
                topics=["work", "study"],
            )


# --- places ---------------------------------------------------------------------------------------

_LIVE_IN = re.compile(
    rf"\b(?:I|we)\s+{_ADV}live\s+in\s+"
    rf"|\b(?:I|we)(?:'m|'re|\s+am|\s+are)\s+{_ADV}(?:living|based|settled)\s+in\s+"
    rf"|\b(?:I|we)(?:'ve|\s+have)\s+{_ADV}(?:been\s+)?(?:lived|living)\s+in\s+"
    r"|(?:^|,\s*)(?:been\s+)?living\s+in\s+|^(?:just\s+|finally\s+|recently\s+)?moved\s+(?:from\s+.{1,40}?\s+)?to\s+"
    rf"|\b(?:I|we)(?:'ve|\s+have)?\s+{_ADV}(?:(?:packed\s+up\s+and|finally|just|recently)\s+)?(?:moved|relocated)\s+"
    r"(?:(?:out\s+of|from)\s+.{1,60}?\s+)?to\s+",
    CI,
)
_ORIGIN = re.compile(
    r"\b(?:I|we)\s+(?:was\s+|were\s+)?(?:born\s+and\s+raised|born\s+and\s+bred|grew\s+up|was\s+born|was\s+raised)"
    r"(?:\s+(?:up\s+)?(?:north|south|east|west|abroad|there))?\s+(?:in|on)\s+"
    r"|^(?:born\s+and\s+(?:raised|bred)|grew\s+up)\s+(?:in|on)\s+"
    rf"|\bI(?:'m|\s+am)\s+{_ADV}(?:originally\s+)?from\s+"
    r"|\bI\s+come\s+from\s+",
    CI,
)
_BORN_AND_BRED = re.compile(
    r"^(?P<place>[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*){0,2})\s+born\s+and\s+(?:bred|raised)\b"
)
# "…to the paper here in Montpelier": where the user is, even inside a request ("I would be grateful…").
_HERE_IN = re.compile(r"\bhere\s+in\s+(?!(?:the|a|an|my|this|that|our)\b)", CI)
# "my grandmother in Kumasi, that's where I grew up"
_THATS_WHERE = re.compile(
    r"(?P<place>(?-i:[A-Z])[\w'-]+(?:\s+(?-i:[A-Z])[\w'-]+)?),?\s+(?:that's|thats|that\s+is|which\s+is)\s+where\s+"
    r"(?:I|we)\s+(?P<verb>grew\s+up|was\s+born|were\s+born|live|lived)",
    CI,
)
_PLACE_ASIDE = re.compile(
    r"(?P<place>[\w'-]+(?:\s+[\w'-]+)?)\s*\(\s*(?:which\s+is\s+)?where\s+I\s+(?P<verb>grew\s+up|was\s+born|live|lived|work)\s*\)",
    CI,
)
_I_AM_IN = re.compile(
    rf"\bI(?:'m|\s+am)\s+{_ADV}in\s+(?!(?:a|an|the|my|your|this|that|some|no|love|trouble|pain|bed|"
    r"charge|shock|tears|debt|therapy|labou?r|recovery|luck|danger|doubt|town|class|school|hospital|college|uni|"
    r"work|office|rehab|jail|prison|heaven|hell|agony|bits|awe|denial|transit|line|control|fact|general|"
    r"particular|time|pieces|shape|form|tune|touch|year|grade|need|favou?r|between|front|there|here)\b)",
    CI,
)
# "koramangala, bangalore", "Lisbon": a place named right after "I'm in".
_WHERE_I_AM = re.compile(
    r"([\w'-]+(?:\s+[\w'-]+)?(?:,\s*[\w'-]+(?:\s+[\w'-]+)?)?)"
    r"(?=$|[.!;]|\s+(?:so|and|but|now|for|with|because)\b)"
)
_NO_LONGER_LIVE = re.compile(r"\bI\s+(?:no\s+longer|don't|do\s+not)\s+live\s+in\s+", CI)


_DWELLING_IN = re.compile(
    r"^(?:a|an|our|my|the)\s+(?:[\w-]+\s+){0,2}(?:place|house|flat|apartment|home|condo|studio|bungalow|cottage)\s+"
    r"(?:in|on|near|at)\s+",
    CI,
)


def _place(s: Sentence, end: int) -> str:
    dwelling = _DWELLING_IN.match(s.text[end:])
    if dwelling:
        end += dwelling.end()
    if "," in s.text[end : end + 60]:
        s = Sentence(s.text[: end + s.text[end:].index(",")], s.reference, s.tense)
    place = object_after(
        s,
        end,
        stops=r"with|for|from|to|as|because|since|and|but|now|after|before|until|at|on|in\s+(?:the|my|a)|last|this|next|"
        "when|where|which|near|around|about|over",
        max_words=5,
    )
    # "a flat", "my parents' house": a dwelling, not a place worth a location slot.
    if not place or re.match(r"(?:a|an|my|our|his|her|their|your|the)\s", place, CI):
        return ""
    if not place[0].isupper() and not (typed_in_lower_case(s.text) or s.text[:1].islower()):
        return ""
    return place


def places(s: Sentence) -> Iterator[Found]:
    for match in each(_LIVE_IN, s):
        place = _place(s, match.end())
        if place:
            yield fact(
                f"User lives in {place}",
                span=(match.start(), match.end() + len(place)),
                topics=["location"],
                entities=[place],
                slot="location",
            )
    for match in each(_ORIGIN, s):
        place = _place(s, match.end())
        if place:
            verb = "is from" if "from" in match[0].lower() else "grew up in"
            yield fact(
                f"User {verb} {place}",
                span=(match.start(), match.end() + len(place)),
                topics=["location"],
                entities=[place],
            )
    for match in _HERE_IN.finditer(s.text):
        place = _place(s, match.end())
        if place:
            yield fact(
                f"User lives in {place}",
                span=(match.start(), match.end() + len(place)),
                topics=["location"],
                entities=[place],
                slot="location",
            )
    for match in _THATS_WHERE.finditer(s.text):
        verb = (
            "grew up in" if "grew" in match["verb"].lower() or "born" in match["verb"].lower() else "lives in"
        )
        yield fact(
            f"User {verb} {match['place']}",
            span=(match.start(), match.end()),
            topics=["location"],
            entities=[match["place"]],
        )
    for match in _PLACE_ASIDE.finditer(s.text):
        verb = " ".join(match["verb"].lower().split())
        verb = {"live": "lives in", "lived": "lived in", "work": "works in"}.get(verb, verb + " in")
        yield fact(
            f"User {verb} {match['place']}",
            span=(match.start(), match.end()),
            topics=["location"],
            entities=[match["place"]],
        )
    for match in each(_I_AM_IN, s):
        rest = s.text[match.end() :]
        where = _WHERE_I_AM.match(rest)
        if where and (where[1][0].isupper() or typed_in_lower_case(s.text)) and len(where[1].split()) <= 4:
            yield fact(
                f"User is in {where[1]}",
                span=(match.start(), match.end() + where.end()),
                topics=["location"],
                entities=[where[1]],
            )
    bred = _BORN_AND_BRED.match(s.text)
    if bred:
        yield fact(
            f"User grew up in {bred['place']}",
            span=(0, bred.end()),
            topics=["location"],
            entities=[bred["place"]],
        )
    for match in _NO_LONGER_LIVE.finditer(s.text):
        place = _place(s, match.end())
        if place:
            yield fact(
                f"User lives in {place}",
                span=(match.start(), match.end() + len(place)),
                topics=["location"],
                kind=CandidateKind.FORGET,
            )


# --- health and diet ------------------------------------------------------------------------------

_CONDITION_ADJECTIVES = (
    r"allergic\s+to|intolerant\s+to|sensitive\s+to|(?:lactose|gluten|fructose|histamine|dairy)[\s-]+intolerant|"
    r"(?:type\s+[12]\s+)?(?:pre-?)?diabetic|coeliac|celiac|anaemic|anemic|asthmatic|epileptic|vegetarian|vegan|"
    r"veggie|pescatarian|pescetarian|plant[\s-]based|gluten[\s-]free|dairy[\s-]free|keto|paleo|teetotal|sober|"
    r"pregnant|deaf|hard\s+of\s+hearing|blind|colou?r[\s-]?blind|autistic|dyslexic|left[\s-]handed|halal|kosher"
)
_I_AM_CONDITION = re.compile(
    r"\b(?:I(?:'m|\s+am|'ve\s+been|\s+have\s+been)|we(?:'re|\s+are)(?:\s+both|\s+all)?)\s+(?:an?\s+[\w-]+\s+who(?:'s|\s+is)\s+)?"
    r"(?:(?:\w+ly|so|very|super|pretty|quite|a\s+bit|mildly|severely|also|still|now|just|officially|strictly|"
    rf"mostly|fully|completely)\s+)*(?P<what>{_CONDITION_ADJECTIVES})\b",
    CI,
)
_DIETS = (
    r"vegetarian|vegan|veggie|pescatarian|pescetarian|plant[\s-]based|keto|paleo|"
    r"gluten[\s-]free|dairy[\s-]free"
)
_GO_DIET = re.compile(
    rf"\b(?:go|going|gone|went|turned|became|become|switched\s+to\s+being)\s+(?P<what>{_DIETS})\b", CI
)
_DONT_EAT = re.compile(
    r"\bI\s+(?:(?:also|still|really|just|totally|completely|strictly)\s+)*(?:don't|do\s+not|can't|cannot|can\s+not|never|"
    r"no\s+longer|won't)\s+(?P<verb>eat|drink|have|touch|do|take|tolerate|digest|handle)(?:\s+|(?=[,.;!]|$))",
    CI,
)
# "the doctor changed me to losartan", "they put me on metformin"
_PUT_ON = re.compile(
    r"\b(?:put|switched|changed|moved|started)\s+me\s+(?:on(?:to)?|to)\s+(?P<med>[\w-]+(?:\s+\d+\s*mg)?)", CI
)
_NO_X_FOR_ME = re.compile(r"\bno\s+(?P<what>[\w\s-]{2,30}?)\s+for\s+me\b", CI)


def health_and_diet(s: Sentence) -> Iterator[Found]:
    for match in each(_I_AM_CONDITION, s):
        what = " ".join(match["what"].split())
        rest = ""
        if what.lower().endswith(" to"):
            rest = object_after(s, match.end(), max_words=8, keep_lists=True)
            if not rest:
                continue
            rest = " " + third_person(rest)
        slot = "diet" if re.fullmatch(_DIETS, what, CI) else ""
        if not rest:  # "vegetarian on weekdays", "vegan since 2019": the qualifier stays
            qualifier = re.match(
                r"\s+((?:on|at|during|except|mostly|most|since|for|at\s+least)\b[^,;.!?()]{2,30})",
                s.text[match.end() :],
                CI,
            )
            rest = f" {trimmed(qualifier[1])}" if qualifier and len(qualifier[1].split()) <= 5 else ""
        yield fact(
            f"User is {what}{rest}",
            span=(match.start(), match.end() + len(rest)),
            topics=["health" if not slot else "diet"],
            slot=slot,
        )
    for match in each(_GO_DIET, s):
        if re.search(r"\b(?:I|we|I've|I'm|me)\b", s.text[: match.start()], CI):
            yield fact(
                f"User is {match['what']}", span=(match.start(), match.end()), topics=["diet"], slot="diet"
            )
    # The negation is this rule's own: `each` only rejects a hedge before the match.
    for match in each(_DONT_EAT, s):
        what = object_after(s, match.end(), max_words=6, keep_lists=True)
        if match["verb"].lower() == "drink" and (not what or what.lower() in ("myself", "at all", "anymore")):
            what = "alcohol"  # "I don't drink (myself)": the drink goes without saying
        if what:
            verb = "drink" if match["verb"].lower() == "drink" else match["verb"].lower()
            yield fact(
                f"User doesn't {verb} {third_person(what)}",
                span=(match.start(), match.end() + len(what)),
                topics=["diet"],
            )
    for match in _PUT_ON.finditer(s.text):
        med = match["med"]
        if med.lower() not in ("a", "an", "the", "it", "that", "this", "something", "nights", "days"):
            yield fact(
                f"User takes {med}", span=(match.start(), match.end()), topics=["health"], slot="medication"
            )
    for match in _NO_X_FOR_ME.finditer(s.text):
        yield fact(
            f"User doesn't eat {match['what'].strip()}", span=(match.start(), match.end()), topics=["diet"]
        )


# --- likes, favourites, preferences ---------------------------------------------------------------

_LIKE = re.compile(
    r"\bI\s+(?:(?:really|also|absolutely|truly|just|do|genuinely|totally|still|especially|honestly|kinda|lowkey)\s+)*"
    r"(?:like|love|enjoy|adore)\s+"
    r"|\bI(?:'m|\s+am)\s+(?:also\s+|really\s+|totally\s+|kinda\s+|so\s+)?(?:a\s+)?(?:big\s+|huge\s+|massive\s+)?fan\s+of\s+"
    r"|\bI(?:'m|\s+am)\s+(?:(?:really|totally|completely|so|kinda|also|now)\s+)*(?:obsessed\s+with|into|hooked\s+on|crazy\s+about|mad\s+about)\s+"
    r"|\bnothing\s+beats\s+|\bcan't\s+beat\s+|\bI\s+(?:could|would)\s+eat\s+(?P<food>[\w\s-]{2,30}?)\s+every\s+day",
    CI,
)
_DISLIKE = re.compile(
    r"\bI\s+(?:(?:really|also|just|absolutely|truly|totally|still|honestly)\s+)*"
    r"(?:(?:don't|do\s+not|dont)\s+(?:(?:really|particularly)\s+)?(?:like|enjoy|love)|dislike|hate|detest|loathe"
    r"|can't\s+stand|cannot\s+stand|can\s+not\s+stand)\s+"
    r"|\bI(?:'m|\s+am)\s+not\s+(?:a\s+)?(?:big\s+|huge\s+)?fan\s+of\s+",
    CI,
)
_FAVOURITE = re.compile(
    r"\b(?:my|our)\s+(?:(?:absolute|all[\s-]time|very|top|number\s+one|#1|ultimate|current|personal)\s+)*"
    r"favourite\s+(?P<what>[\w'-]+(?:\s+[\w'-]+){0,2}?)(?:\s+(?:ever|in\s+the\s+world|of\s+all\s+time|right\s+now|"
    r"at\s+the\s+moment))?(?:\s+(?:is|are|has\s+(?:always\s+)?been|was|would\s+be|will\s+always\s+be|"
    r"is\s+always|is\s+still)|'s|:|\s*-)\s+",
    CI,
)
_IS_MY_FAVOURITE = re.compile(
    r"(?P<thing>[^,;:.!?]{2,60}?)\s+(?:is|are|has\s+always\s+been|'s|was)\s+(?:definitely\s+|probably\s+|still\s+|easily\s+)?"
    r"(?:my|our)\s+(?:(?:absolute|all[\s-]time|very|top|ultimate|personal|number\s+one)\s+)*favourite(?:\s+(?P<what>[\w'-]+(?:\s+(?!(?:and|but|so|or|because)\b)[\w'-]+)?))?",
    CI,
)
_APPOSITION_FAVOURITE = re.compile(
    r"(?P<thing>[^,;:.!?]{2,80}?),\s+(?:\w+ly\s+)?(?:it's\s+|its\s+|that's\s+|thats\s+)?(?:my|our)\s+"
    r"(?:(?:absolute|all[\s-]time|very|top|ultimate)\s+)*favourite\s+(?P<what>[\w'-]+(?:\s+[\w'-]+)?)",
    CI,
)
_IS_MY_HOBBY = re.compile(
    r"(?P<thing>[^,;:.!?]{2,40}?)\s+(?:is|are|has\s+(?:always\s+)?been|'s)\s+(?:\w+ly\s+)?(?:my|our)\s+(?:big\s+|main\s+|real\s+)?"
    r"(?P<what>hobby|passion|thing|happy\s+place|obsession|life|jam|sport|guilty\s+pleasure)\b",
    CI,
)
# Lower case only: "A Love Supreme" is a title, not "a" + "Love Supreme".
_TAIL_DETERMINER = re.compile(
    r"^.*\b(?:the\s+best|best|the|a|an|some|good|great|my|our|with|of|called|it's|its)\s+"
)


def _tail_noun_phrase(text: str) -> str:
    """The last noun phrase of a long clause: "the kopitiam does the best kaya toast" → "kaya toast"."""
    text = text.strip()
    if len(text.split()) <= 5:
        return text
    tail = _TAIL_DETERMINER.sub("", text)
    return " ".join(tail.split()[-4:])


_PREFER = re.compile(
    r"\bI\s+(?P<adverbs>(?:(?:really|also|much|generally|usually|definitely|still|now|actually|mostly)\s+)*)"
    r"prefer\s+",
    CI,
)
_SWITCHED = re.compile(
    r"\bI(?:'ve|\s+have)?\s+(?:(?:just|recently|finally|now|since|completely|totally|officially)\s+)*switched\s+"
    r"(?:(?P<what>my\s+[\w\s]{2,25}?)\s+)?(?:from\s+(?P<old>.{1,60}?)\s+)?to\s+"
    r"|^(?:just\s+|finally\s+|so\s+)?switched\s+(?:from\s+(?P<old2>.{1,60}?)\s+)?to\s+",
    CI,
)
_NOW = re.compile(r"\b(?:now|nowadays|these\s+days|lately|from\s+now\s+on|anymore|instead)\b", CI)
_COMPARED = re.compile(r"\s+(?:over|rather\s+than|instead\s+of|more\s+than|to)\s+", CI)
# "I prefer to walk" is an infinitive, not a comparison: there "to" does not split.
_COMPARED_NOT_TO = re.compile(r"\s+(?:over|rather\s+than|instead\s+of|more\s+than)\s+", CI)
_THING_START = re.compile(
    r"^(?:(?:honestly|but|and|so|also|oh|for\s+me|for\s+dessert|dessert-wise|for\s+food),?\s+)*(?:it's\s+|its\s+|it\s+is\s+)?",
    CI,
)


def _favourite_key(what: str) -> str:
    words_ = re.sub(r"[^\w\s'-]", " ", what.lower()).split()
    return " ".join(w for w in words_ if w not in ("thing", "things"))[:30].strip()


def _favourite(what: str, thing: str, span: tuple[int, int]) -> Found | None:
    what = re.sub(r"\s+(?:of|in|ever|on|at|for)$", "", what.strip(), flags=CI)
    thing = trimmed(_THING_START.sub("", thing.strip()))
    if re.match(r"(?:the\s+|a\s+|some\s+|good\s+)*my\s+[A-Z]", thing) is None:
        thing = third_person(thing)  # "My Girl by the Temptations" is a title: left as it is
    if not thing or NOT_AN_OBJECT.match(thing) or len(thing.split()) > 8:
        return None
    what = what.strip()
    key = _favourite_key(what) if what else ""
    subject = f"User's favourite {what}" if what else "User's favourite"
    return fact(
        f"{subject} is {thing}",
        span=span,
        topics=["preferences", "favourites"],
        slot=f"favourite:{key}" if key else "",
    )


def likes(s: Sentence) -> Iterator[Found]:
    for match in each(_FAVOURITE, s):
        thing = object_after(s, match.end(), max_words=8, keep_lists=True)
        found = _favourite(match["what"], thing, (match.start(), match.end() + len(thing)))
        if found:
            yield found
    for regex in (_IS_MY_FAVOURITE, _APPOSITION_FAVOURITE):
        for match in each(regex, s):
            thing = match["thing"] if regex is _IS_MY_FAVOURITE else _tail_noun_phrase(match["thing"])
            found = _favourite(match["what"] or "", thing, (match.start(), match.end()))
            if found:
                yield found
    for match in each(_IS_MY_HOBBY, s):
        thing = trimmed(_THING_START.sub("", match["thing"]))
        if thing and not NOT_AN_OBJECT.match(thing):
            what = " ".join(match["what"].lower().split())
            yield fact(
                f"User's {what} is {third_person(thing)}",
                span=(match.start(), match.end()),
                topics=["hobbies" if what in ("hobby", "passion", "sport") else "preferences"],
            )
    for match in each(_LIKE, s):
        thing = match["food"] or object_after(s, match.end(), max_words=10, keep_lists=True)
        if thing and thing.lower() not in TRANSIENT_STATES:
            yield fact(
                f"User likes {third_person(thing.strip())}",
                span=(match.start(), match.end() + len(thing)),
                topics=["preferences"],
            )
    # The negation inside this rule's own match is not a hedge: `each` only looks before it.
    for match in each(_DISLIKE, s):
        thing = object_after(s, match.end(), max_words=8, keep_lists=True)
        if thing:
            yield fact(
                f"User dislikes {third_person(thing)}",
                span=(match.start(), match.end() + len(thing)),
                topics=["preferences"],
            )


def _preference_key(old: str) -> str:
    """A stable, tag-safe key for the thing a changed preference replaces ("the Dark mode" → "dark mode")."""
    words_ = re.sub(r"[^\w\s'+#-]", " ", old.lower()).split()
    while words_ and words_[0] in ("a", "an", "the", "using", "my", "drinking", "eating", "playing", "doing"):
        words_ = words_[1:]
    return " ".join(words_)[:40].strip()


def _preference(new: str, old: str, *, changed: bool, span: tuple[int, int]) -> Found:
    text = f"User prefers {third_person(new)}" + (f" over {third_person(old)}" if old else "")
    slot = ""
    if changed:
        key = _preference_key(old) if old else ""
        slot = f"preference:{key}" if key else "preference"
    return fact(text, span=span, topics=["preferences"], slot=slot)


def preferences(s: Sentence) -> Iterator[Found]:
    for match in each(_PREFER, s):
        clause = clause_end(s.text[match.end() :])
        changed = any(_NOW.search(part) for part in (match["adverbs"], clause, s.text[: match.start()]))
        thing = object_after(s, match.end(), max_words=10)
        if not thing:
            continue
        compared = _COMPARED_NOT_TO if thing.lower().startswith("to ") else _COMPARED
        parts = [part.strip() for part in compared.split(thing, maxsplit=1)]
        new, old = parts[0], parts[1] if len(parts) > 1 else ""
        if new and not (old and NOT_AN_OBJECT.match(old)):
            yield _preference(new, old, changed=changed, span=(match.start(), match.end() + len(thing)))
    for match in each(_SWITCHED, s):
        new = object_after(s, match.end(), max_words=8)
        old = strip_end(match["old"] or match["old2"] or "")
        if not new or (old and NOT_AN_OBJECT.match(old)):
            continue
        span = (match.start(), match.end() + len(new))
        if match["what"]:  # "I switched my major to computer science"
            what = third_person(match["what"].strip())
            yield fact(
                f"{capitalised(what)} is now {third_person(new)}",
                span=span,
                topics=["about-user"],
                slot=f"switched:{_preference_key(match['what'])}",
            )
        else:
            yield _preference(new, old, changed=True, span=span)


# --- changes: what no longer holds ----------------------------------------------------------------

_GAVE_UP = re.compile(
    r"\b(?:I(?:'ve|\s+have)?\s+|^)(?:(?:just|finally|recently|officially|completely|had\s+to|decided\s+to)\s+)*"
    # Verbs that end a habit, a membership or an ownership; not "left" ("I left London" is a trip),
    # "dropped" ("I dropped my phone") or "stopped by".
    r"(?:quit|gave\s+up|give\s+up|given\s+up|stopped(?!\s+(?:by|at|in|off|for)\b)|sold|cancelled|canceled|"
    r"retired\s+from)\s+",
    CI,
)
_NO_LONGER = re.compile(
    r"\bI\s+(?:no\s+longer|don't|do\s+not)\s+(?P<verb>[a-z]+)\s+(?=.+\b(?:anymore|any\s+more)\b)"
    r"|\bI\s+no\s+longer\s+(?P<verb2>[a-z]+)\s+",
    CI,
)
_NOT_QUITTABLE = re.compile(
    r"^(?:it|that|this|them|home|work|early|the\s+house|the\s+office|a\s+message|a\s+comment|you)\b", CI
)


def changes(s: Sentence) -> Iterator[Found]:
    """ "I quit F45", "I sold the Elantra", "I gave up running": the thing stops being true. The
    user's own words become a fact, and memories naming the thing are retired (see decide.py)."""
    for match in each(_GAVE_UP, s):
        thing = object_after(s, match.end(), stops="because|so|after|last|this|and|but|since", max_words=5)
        if not thing or _NOT_QUITTABLE.match(thing):
            continue
        verb = (
            " ".join(match[0].split())
            .removeprefix("I've ")
            .removeprefix("I have ")
            .removeprefix("I ")
            .strip()
        )
        span = (match.start(), match.end() + len(thing))
        yield fact(f"User {third_person(verb)} {third_person(thing)}", span=span, topics=["about-user"])
        yield fact(_subject_of(thing), span=span, topics=[], kind=CandidateKind.SUPERSEDE)
    for match in each(_NO_LONGER, s):
        verb = match["verb"] or match["verb2"]
        if verb.lower() in ("live",):
            continue  # places() handles "I no longer live in X"
        thing = object_after(s, match.end(), max_words=5)
        if thing and not _NOT_QUITTABLE.match(thing):
            yield fact(
                _subject_of(thing),
                span=(match.start(), match.end() + len(thing)),
                topics=[],
                kind=CandidateKind.SUPERSEDE,
            )


def _subject_of(thing: str) -> str:
    """The words that name what stopped: "the Elantra" → "Elantra", "my old job" → "old job"."""
    words_ = thing.split()
    while words_ and words_[0].lower() in ("a", "an", "the", "my", "our", "that", "this"):
        words_ = words_[1:]
    return " ".join(words_) or thing


# --- single-word traits ---------------------------------------------------------------------------

_TRAIT = re.compile(
    rf"\bI(?:'m|\s+am)\s+{_ADV}(?:(?:a|an)\s+)?(?P<trait>[\w-]+)(?=$|[,.;!]|\s+(?:and|but|so|now|since|too|as\s+well)\b)",
    CI,
)
_WORK_TRAITS = frozenset({"retired", "unemployed", "self-employed", "freelance"})


def traits(s: Sentence) -> Iterator[Found]:
    for match in each(_TRAIT, s):
        trait = match["trait"].lower()
        if trait in TRAITS and not re.search(_DIETS, trait, CI):
            slot = (
                "job"
                if trait in _WORK_TRAITS
                else "relationship"
                if trait in ("married", "single", "divorced", "widowed", "engaged", "separated")
                else ""
            )
            topic = "work" if trait in _WORK_TRAITS else "identity"
            yield fact(
                f"User is {match['trait']}", span=(match.start(), match.end()), topics=[topic], slot=slot
            )


# --- things the user owns, and what they are working towards -------------------------------------

_NOT_A_BRAND = words(
    "god lord gosh goodness mom mum dad mam mama papa monday tuesday wednesday thursday friday "
    "saturday sunday "
    "january february march april may june july august september october november december english spanish "
    "french german italian chinese japanese arabic christmas easter ramadan diwali eid instagram "
    "tiktok twitter "
    "facebook youtube reddit linkedin whatsapp gmail email phd uni mba"
)
# "my Thermomix", "my Kindle Paperwhite", "my old Vespa": a named product the user owns.
_MY_PRODUCT = re.compile(
    r"\b(?:my|our|I(?:'m|\s+am)\s+(?:on|using)\s+(?:a|an|my))\s+(?:(?:old|new|trusty|beloved|ancient|little|first|second|"
    r"\d{4})\s+)*(?P<thing>(?-i:[A-Z])[\w-]+(?:\s+(?:(?-i:[A-Z0-9])[\w-]*)){0,3})",
    CI,
)
_MY_GROUP = re.compile(
    r"\bmy\s+(?P<what>(?!(?:new|old|local|favourite)\b)[a-z][\w-]*(?:\s+[a-z][\w-]*)?)\s+(?P<kind>club|team|group|choir|"
    r"band|league|crew|orchestra|class)\b",
    CI,
)
_COLLECTION = re.compile(r"\bmy\s+(?P<what>[a-z][\w-]*(?:\s+[a-z][\w-]*)?)\s+collection\b", CI)
# "my ute, it's a 2012 Toyota Hilux", "my car, the 2008 Toyota Camry my dad gave me"
_MY_THING_IS = re.compile(
    r"\bmy\s+(?P<noun>car|ute|truck|van|bike|motorbike|motorcycle|scooter|phone|laptop|computer|tablet|camera|guitar|"
    r"piano|boat|house|flat|apartment|watch|drone|console)\s*,\s*(?:(?:it's|its|it\s+is|which\s+is|a|an|the)\s+)+"
    r"(?P<what>[^,;.!?]{3,60})",
    CI,
)
_GIVEN = re.compile(
    r"\b(?:gave|got|bought|gifted|lent|left)\s+me\s+(?:(?:a|an)\s+(?:gift|present)\s*,\s*)?(?P<what>(?:a|an|the|my)\s+[^,;.!?]{3,50})",
    CI,
)
_GOAL = re.compile(
    r"\bI(?:'m|\s+am)?\s*(?:really\s+|also\s+|still\s+)?(?:want|wanna|hope|plan|planning|'d\s+like|would\s+like|am\s+trying|'m\s+trying|try)\s+"
    r"to\s+(?P<goal>(?:learn|become|move\s+to|improve|get\s+better\s+at|study|start|get\s+into|run|write|lose|quit|open|"
    r"buy|visit|retire|travel|finish|train\s+for|apply\s+for)\b[^,;.!?]{2,60})",
    CI,
)
# A fragment that drops "I'm doing": "phd in marine biology at NUS", "masters in law at UCL".
_STUDY_FRAGMENT = re.compile(
    r"^(?:(?:doing|finishing|starting)\s+(?:a|my)\s+)?(?P<what>phd|ph\.d|masters?|master's|msc|ma|mba|bsc|ba|degree|diploma|"
    r"apprenticeship)\s+(?:in|on)\s+(?P<field>[^,;.!?]{2,60})",
    CI,
)


def possessions(s: Sentence) -> Iterator[Found]:
    for match in _MY_PRODUCT.finditer(s.text):
        thing = match["thing"].strip()
        if thing.split()[0].lower() in _NOT_A_BRAND:
            continue
        article = "an" if thing[0].lower() in "aeiou" else "a"
        yield fact(
            f"User has {article} {thing}",
            span=(match.start(), match.end()),
            topics=["possessions"],
            entities=[thing],
        )
    for match in _MY_THING_IS.finditer(s.text):
        what = trimmed(match["what"])
        if what:
            yield fact(
                f"User's {match['noun'].lower()} is {third_person(what)}",
                span=(match.start(), match.end()),
                topics=["possessions"],
            )
    for match in each(_GIVEN, s):
        what = trimmed(match["what"])
        if what and not NOT_AN_OBJECT.match(what) and len(what.split()) <= 8:
            named = re.match(
                r"\s*,\s*(?:it's|its|it\s+is|a|an)\s+(?:a\s+|an\s+)?([^,;.!?]{2,40})",
                s.text[match.end() :],
                CI,
            )
            detail = f", {trimmed(named[1])}" if named else ""
            yield fact(
                f"User has {third_person(what)}{detail}",
                span=(match.start(), match.end()),
                topics=["possessions"],
            )
    for match in each(_MY_GROUP, s):
        kind, what = match["kind"].lower(), match["what"]
        article = "an" if what[:1].lower() in "aeiou" else "a"
        yield fact(
            f"User is in {article} {what} {kind}", span=(match.start(), match.end()), topics=["hobbies"]
        )
    for match in each(_COLLECTION, s):
        yield fact(
            f"User has a {match['what']} collection",
            span=(match.start(), match.end()),
            topics=["possessions"],
        )


def goals(s: Sentence) -> Iterator[Found]:
    for match in each(_GOAL, s):
        goal = trimmed(clause_end(match["goal"]))
        if goal and len(goal.split()) <= 10:
            yield fact(
                f"User wants to {third_person(goal)}", span=(match.start(), match.end()), topics=["goals"]
            )
    study = _STUDY_FRAGMENT.match(s.text)
    if study:
        field = trimmed(clause_end(study["field"]))
        if field:
            what = (
                study["what"].upper()
                if study["what"].lower() in ("phd", "msc", "mba", "bsc", "ba", "ma")
                else study["what"]
            )
            yield fact(
                f"User is doing a {what} in {third_person(field)}",
                span=(0, study.end()),
                topics=["work", "study"],
            )
