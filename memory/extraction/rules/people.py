"""Rules about who the user is and who is around them: name, age, pronouns, origin, family, pets."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from memory.extraction.rules.found import Found, fact
from memory.extraction.rules.lexicon import (
    ANIMALS,
    BREEDS,
    RELATIVES,
    TRAITS,
    TRANSIENT_STATES,
    plural_forms,
    words,
)
from memory.extraction.rules.text import (
    CI,
    NOT_A_NAME,
    Sentence,
    clause_end,
    each,
    joined,
    names,
    third_person,
    trimmed,
    typed_in_lower_case,
)

# --- name -----------------------------------------------------------------------------------------

_MY_NAME = re.compile(
    r"\bmy\s+name(?:\s+is|'s)\s+|\bI(?:'m|\s+am)\s+called\s+|^name's\s+|^the\s+name's\s+", CI
)
# "call me" only as a request at the start, so "don't call me that" and "call me crazy" are left out.
_CALL_ME = re.compile(
    r"(?:(?:^|,\s*|\bbut\s+|\bso\s+)(?:(?:please|pls|just|you\s+can|you\s+may|feel\s+free\s+to)\s+)*call\s+me\s+"
    r"|\b(?:everyone|everybody|people|most\s+people|(?:all\s+)?(?:my|our)\s+(?:friends|family|mates|colleagues|kids|"
    r"students|team)|friends)\s+(?:in\s+\w+\s+)?(?:has\s+|have\s+)?(?:just\s+|usually\s+|always\s+)?(?:calls?|called)\s+me\s+)",
    CI,
)
_GO_BY = re.compile(r"\bI\s+go\s+by\s+", CI)
_HERE = re.compile(
    r"^(?P<name>[A-Za-z][\w'-]*(?:\s+[A-Z][\w'-]*)?)\s+here(?:\b|$)(?!\s+(?:is|are|was|in|at))", CI
)
_SIGN_OFF = re.compile(
    r"\b(?:please\s+)?sign\s+(?:it|the\s+(?:email|letter|message|card|post))?\s*(?:off\s+)?(?:as\s+|with\s+)?['\"]?"
    r"(?=(?-i:[A-Z]))",
    CI,
)
_I_AM = re.compile(r"(?:^|,\s*|\band\s+|\bbut\s+)I(?:'m|\s+am)\s+(?=\S)", CI)
# Common nationalities: "I'm Brazilian" is where someone is from, not their name.
DEMONYMS = words(
    "american british english scottish welsh irish canadian australian kiwi mexican brazilian argentine "
    "argentinian chilean colombian peruvian venezuelan cuban spanish portuguese french german dutch belgian "
    "swiss austrian italian greek turkish polish czech slovak hungarian romanian bulgarian serbian croatian "
    "bosnian slovenian ukrainian russian belarusian lithuanian latvian estonian finnish swedish norwegian "
    "danish icelandic chinese japanese korean taiwanese vietnamese thai filipino filipina indonesian "
    "malaysian singaporean indian pakistani bangladeshi nepali sri_lankan afghan iranian persian iraqi "
    "syrian lebanese jordanian israeli palestinian egyptian moroccan algerian tunisian libyan nigerian "
    "ghanaian kenyan ethiopian somali ugandan tanzanian rwandan south_african zimbabwean cameroonian "
    "senegalese ivorian congolese jamaican trinidadian haitian dominican puerto_rican hawaiian maori "
    "samoan tongan fijian armenian georgian azerbaijani kazakh uzbek mongolian tibetan sherpa kurdish "
    "arab latina latino latinx hispanic asian african european scandinavian balkan"
)


# Lower-case words after "I'm" that are states, not names ("im broke, …").
_ADJECTIVES = words(
    "broke sick late early fine cold hot warm alive awake asleep hungover poor rich old young new bored "
    "lonely broke stressed anxious depressed upset dead beat wiped knackered shattered starving full stuffed "
    "sorry sure ready good okay great well better worse ill unwell nervous excited pregnant single married "
    "divorced retired unemployed lost confused curious desperate serious"
)


def _is_name(word: str) -> bool:
    lower = word.lower()
    return bool(
        word
        and word[0].isalpha()
        and lower not in NOT_A_NAME
        and lower not in TRAITS
        and lower not in TRANSIENT_STATES
        and lower not in DEMONYMS
    )


def identity(s: Sentence) -> Iterator[Found]:
    lower_case = typed_in_lower_case(s.text)
    for match in each(_MY_NAME, s):
        for name in names(s.text[match.end() :], capitalised=False):
            yield fact(
                f"User's name is {name}",
                span=(match.start(), match.end() + len(name)),
                topics=["identity"],
                entities=[name],
                slot="name",
            )
    for regex in (_CALL_ME, _GO_BY):
        for match in each(regex, s):
            for name in names(s.text[match.end() :], capitalised=not lower_case):
                if _is_name(name.split()[0]):
                    # A request ("call me Al") or how others call them ("everybody calls me Kwams").
                    said = (
                        "wants to be called"
                        if regex is _CALL_ME and "call me" in match[0].lower()
                        else "goes by"
                    )
                    yield fact(
                        f"User {said} {name}",
                        span=(match.start(), match.end() + len(name)),
                        topics=["identity"],
                        entities=[name],
                        slot="nickname",
                    )
    sign = _SIGN_OFF.search(s.text)
    if sign:
        signed = names(s.text[sign.end() :], capitalised=True)
        if signed and _is_name(signed[0].split()[0]):
            yield fact(
                f"User's name is {signed[0]}",
                span=(sign.start(), sign.end() + len(signed[0])),
                topics=["identity"],
                entities=signed,
                slot="name",
            )
    here = _HERE.match(s.text)
    if here and _is_name(here["name"].split()[0]):
        name = here["name"]
        yield fact(
            f"User's name is {name}", span=(0, len(s.text)), topics=["identity"], entities=[name], slot="name"
        )
    for match in each(_I_AM, s):
        yield from _i_am(s, match, lower_case=lower_case)


_AGE = re.compile(
    r"(?:(?:only|just|almost|nearly|turning|now)\s+)?(?P<age>\d{1,3})(?:\s*(?:years?\s+old|yrs?\s+old|y/?o|years?\s+young))?"
    r"(?=$|[,.;!]|\s+(?:and|but|so|now|today|next|this|in|from|with|if|not|btw|years|though)\b)",
    CI,
)
_APPOSITION_AGE = re.compile(r",\s*(?P<age>\d{1,3})(?:\s*(?:years?\s+old|y/?o))?\s*(?=,|$|\s+and\b)", CI)
_TURNED = re.compile(
    r"\bI(?:\s+(?:just|recently|finally))?\s+turned\s+(?P<age>\d{1,3})\b"
    # "…make it simpler, I'm only 15": an age anywhere in the sentence
    r"|\bI(?:'m|\s+am)\s+(?:only\s+|just\s+|almost\s+|nearly\s+|now\s+)?(?P<age2>\d{1,2})(?:\s*(?:years?\s+old|y/?o))?"
    r"(?=$|[,.;!]|\s+(?:and|but|so|now|if|not|btw|years|though|which)\b)",
    CI,
)


def _age_fact(age: str, span: tuple[int, int]) -> Found | None:
    if not 5 <= int(age) <= 110:
        return None
    return fact(f"User is {age} years old", span=span, topics=["identity"], slot="age")


def _i_am(s: Sentence, match: re.Match[str], *, lower_case: bool) -> Iterator[Found]:
    """ "I'm Priya", "I'm 34", "I'm Brazilian", "im ioana, 22, …"."""
    rest = s.text[match.end() :]
    age = _AGE.match(rest)
    if age:
        found = _age_fact(age["age"], (match.start(), match.end() + age.end()))
        if found:
            yield found
        return
    first = rest.split()[0].rstrip(",.!") if rest.split() else ""
    if first.lower() in DEMONYMS:
        yield fact(
            f"User is {first[0].upper() + first[1:]}",
            span=(match.start(), match.end() + len(first)),
            topics=["identity"],
        )
        return
    # A name: capitalised (or, typed all in lower case, followed by the end of the clause).
    candidates = names(rest, capitalised=not lower_case)
    if not candidates and match.start() == 0:
        # "im ioana, 22, …": a lower-case name right at the start, ending its clause.
        lone = re.match(r"([a-z][\w'-]{1,20})(?=\s*(?:,|$|\s+and\b))", rest)
        if lone and _is_name(lone[1]) and not lone[1].endswith(("ing", "ed")) and lone[1] not in _ADJECTIVES:
            candidates, lower_case = [lone[1]], True
    if not candidates or not _is_name(candidates[0].split()[0]):
        return
    name = candidates[0]
    after = rest[len(name) :]
    if lower_case and not re.match(r"\s*(?:$|[,.!]|\s(?:and|but|from|here)\b)", after):
        return
    if not lower_case and not name[0].isupper():
        return
    yield fact(
        f"User's name is {name}",
        span=(match.start(), match.end() + len(name)),
        topics=["identity"],
        entities=[name],
        slot="name",
    )
    at = match.end() + len(name)
    apposition_age = _APPOSITION_AGE.match(after)
    if apposition_age:
        found_age = _age_fact(apposition_age["age"], (at, at + apposition_age.end()))
        if found_age:
            yield found_age
    for aside in re.finditer(
        r",\s*(?:(?P<demonym>[a-z]+)|from\s+(?P<place>[\w'-]+(?:\s+[A-Z][\w'-]*)?))(?=\s*(?:,|$|\s+(?:but|and|originally)\b))",
        after[:80],
        CI,
    ):
        if aside["demonym"] and aside["demonym"].lower() in DEMONYMS:
            yield fact(
                f"User is {aside['demonym'].capitalize()}", span=(at, at + aside.end()), topics=["identity"]
            )
        elif aside["place"]:
            yield fact(
                f"User is from {aside['place']}",
                span=(at, at + aside.end()),
                topics=["location"],
                entities=[aside["place"]],
            )


def age(s: Sentence) -> Iterator[Found]:
    for match in each(_TURNED, s):
        found = _age_fact(match["age"] or match["age2"], (match.start(), match.end()))
        if found:
            yield found


_PRONOUNS = re.compile(
    r"\b(?:I\s+use\s+|my\s+pronouns\s+are\s+)(?P<p>(?:she|he|they|xe|ze|it)/(?:her|him|them|hers|his|theirs|xem|zir|its)"
    r"(?:/\w+)?)",
    CI,
)


def pronouns(s: Sentence) -> Iterator[Found]:
    for match in each(_PRONOUNS, s):
        yield fact(
            f"User uses {match['p'].lower()} pronouns",
            span=(match.start(), match.end()),
            topics=["identity"],
            slot="pronouns",
        )


# --- family and pets ------------------------------------------------------------------------------

_RELATIVE_FORMS = plural_forms(RELATIVES)
_ANIMAL_FORMS = plural_forms(ANIMALS | BREEDS)


def _alternation(forms: Iterable[str]) -> str:
    ordered = sorted(forms, key=len, reverse=True)  # "goldfish" before "fish"
    return "|".join(r"\s+".join(re.escape(part) for part in w.split()) for w in ordered)


_NOUNS = _alternation([*_RELATIVE_FORMS, *_ANIMAL_FORMS])
_COUNT = r"(?:an?|one|two|three|four|five|six|seven|eight|nine|ten|\d{1,2})"
_MODIFIERS = r"(?:(?!(?:is|was|and|has|had|just|who|named|called)\b)[a-z][\w'-]*\s+){0,3}"
# "my (little) sister (,) Ana", "our shiba inu Kuro", "my two cats Pickle and Crumpet", "my dog is a
# Dalmatian", "my sister's name is Ana".
# "tayla's officially my fiancée now", "Dom is my husband": the name first.
_NAME_IS_MY = re.compile(
    r"(?P<name>(?-i:[A-Za-z])[\w-]+)(?:'s|\s+is)\s+(?:(?:officially|now|also|still)\s+)*(?:my|our)\s+"
    rf"(?P<noun>{_alternation(_RELATIVE_FORMS)})\b",
    CI,
)
_MY_NOUN = re.compile(
    rf"(?:\b(?:my|our)|^(?:me\s+and\s+my)|\bthe(?=\s+(?:{_alternation(_ANIMAL_FORMS)}),\s+[A-Z]))\s+(?P<count>{_COUNT}\s+)?(?P<adj>{_MODIFIERS})(?P<noun>{_NOUNS})\b"
    r"(?P<poss>'s)?",
    CI,
)
_HAVE = re.compile(
    r"\b(?:I|we)(?:\s+(?:also|still|now|already|just|finally))?(?:\s+have(?:\s+got)?|'ve\s+got|\s+got|\s+own|"
    r"\s+adopted|\s+rescued|\s+bought)\s+"
    rf"(?P<count>{_COUNT})\s+(?P<adj>{_MODIFIERS})(?P<noun>{_NOUNS})\b"
    # The noun ends its phrase: "a cat allergy" is no cat.
    r"(?=$|[,.;:!)]|\s+(?:named|called|and|who|that|which|but|too|at|in|with|living|whose|so|because|now|also|since|"
    r"as\s+well|is|are|was|were|from|of|aged)\b|\s+(?-i:[A-Z]))",
    CI,
)
_NAMED = re.compile(r"\s*,?\s*(?P<verb>named|called)\s+", CI)
_CALLED_IS = re.compile(r"\s*(?:(?:'s\s+)?name\s+is|is\s+(?:called|named)|'s\s+called)\s+", CI)
_IS_A = re.compile(
    r"\s+is\s+(?:a|an)\s+(?P<what>[^,;.]{2,60}?)(?:\s+(?P<verb>called|named)\s+|(?=$|[,;.]))", CI
)


def _topic(noun: str) -> str:
    singular = " ".join(noun.lower().split())
    return "pets" if singular in _ANIMAL_FORMS else "family"


_APPOSITION = re.compile(r"^\s*,\s*(?=(?:a|an|aged|who|he|she|they|he's|she's|they're)\b)", CI)
_DESCRIBED = re.compile(
    r"\s*(?:who\s+is|who's|who\s+are|is|are|'s|he's|she's|they're|(?:he|she|they)\s+(?:is|are)|aged)?\s*"
    r"(?P<what>(?:just\s+turned|turns|turn|turned|is\s+turning|are\s+turning|is|are)?\s*(?:\d{1,2}(?:\s*(?:years?|months?|weeks?)(?:\s+old)?)?"
    r"|(?:a|an)\s+[^,;]{2,50}))\s*$",
    CI,
)
# After a lower-case "my sister abena", the clause goes on like this; "my sister lives…" has no name.
_NAME_FOLLOWS = re.compile(
    r"\s*(?:$|[,.!;]|\s*(?:is|was|and|has|just|turns|turned|who|he|she|lives|works|got|made|said|says|"
    r"thinks|loves|hates|likes|sleeps|\d)\b)",
    CI,
)


def _description(tail: str) -> str:
    """What the clause says about the person or animal just named: "is 9", "just turned 4", "is a
    Dalmatian"; "" when it goes on about something else ("made jollof for dinner")."""
    apposition = _APPOSITION.match(tail)
    if apposition:
        tail = tail[apposition.end() :]
    clause = re.split(r"\s+(?:and|but)\s+(?!(?:a|an)\b)", clause_end(tail), maxsplit=1)[0]
    m = _DESCRIBED.match(clause)
    what = trimmed(m["what"]).strip() if m else ""
    if not what:
        return ""
    if what[0].isdigit() or what.lower().startswith(("a ", "an ")):
        return "is " + what
    return what


def family_and_pets(s: Sentence) -> Iterator[Found]:
    lower_case = typed_in_lower_case(s.text)
    for match in each(_MY_NOUN, s):
        yield from _my_noun(s, match, lower_case=lower_case)
    for match in each(_HAVE, s):
        yield from _have(s, match)
    for match in each(_NAME_IS_MY, s):
        name = match["name"]
        if _is_name(name) and name.lower() not in ("she", "he", "this", "that", "it", "who", "which"):
            yield fact(
                f"User's {match['noun'].lower()} is {name}",
                span=(match.start(), match.end()),
                topics=["family"],
                entities=[name],
            )


def _who(match: re.Match[str]) -> str:
    parts = [match["count"], match["adj"], match["noun"]]
    return " ".join(" ".join(p.split()) for p in parts if p and p.strip())


def _my_noun(s: Sentence, match: re.Match[str], *, lower_case: bool) -> Iterator[Found]:
    """ "my sister's name is Ana", "my dog is a Dalmatian called Luna", "my son Kenji just turned 4"."""
    who, topic, end = _who(match), _topic(match["noun"]), match.end()
    rest = s.text[end:]
    many = bool(match["count"] and match["count"].strip().lower() not in ("a", "an", "one")) or (
        match["noun"].lower() in _PLURAL_NOUNS
    )
    called = _CALLED_IS.match(rest)
    if called:
        found = names(rest[called.end() :], capitalised=False, many=many)
        if found:
            yield fact(
                f"User's {who} {'are' if len(found) > 1 else 'is'} called {joined(found)}",
                span=(match.start(), end + called.end() + len(found[-1])),
                topics=[topic],
                entities=found,
            )
        return
    if match["poss"]:
        return  # "my sister's car" is about something else
    is_a = _IS_A.match(rest)
    if is_a:
        what = is_a["what"].strip()
        text = f"User's {who} is a{'n' if what[:1].lower() in 'aeiou' else ''} {third_person(what)}"
        found = names(rest[is_a.end() :], capitalised=False) if is_a["verb"] else []
        if found:
            text += f" {is_a['verb'].lower()} {found[0]}"
        yield fact(
            text,
            span=(match.start(), end + is_a.end() + len(found[0] if found else "")),
            topics=[topic],
            entities=found,
        )
        return
    bare = re.match(r"\s+(?:is|'s)\s+(?=(?-i:[A-Z]))", rest, CI)
    if bare:  # "my little brother is Tom": the name must end the clause ("my husband is Tom and…")
        found = names(rest[bare.end() :], capitalised=True)
        tail = rest[bare.end() + len(found[0]) :] if found else ""
        if found and re.match(r"\s*(?:$|[,;:.!]|\s(?:and|but|too|who|so|now)\b)", tail, CI):
            yield fact(
                f"User's {who} is {found[0]}",
                span=(match.start(), end + bare.end() + len(found[0])),
                topics=[topic],
                entities=found,
            )
        return
    named = _NAMED.match(rest)
    offset = named.end() if named else len(rest) - len(rest.lstrip(" ,"))
    found = names(rest[offset:], capitalised=not lower_case and not named, many=many)
    found = [n for n in found if n.split()[0].lower() not in NOT_A_NAME]
    if not found:
        return
    last = rest.find(found[-1], offset) + len(found[-1])
    tail = rest[last:]
    if lower_case and not named and not _NAME_FOLLOWS.match(tail):
        return
    description = _description(tail)
    listed = joined(found)
    if description:
        if len(found) > 1:
            description = re.sub(r"^is\b", "are", description)
        text = f"User's {who} {listed} {third_person(description)}"
    else:
        text = f"User's {who} {'are' if len(found) > 1 else 'is'} called {listed}"
    yield fact(text, span=(match.start(), end + last), topics=[topic], entities=found)


_PLURAL_NOUNS = {
    form
    for form, singular in {**_RELATIVE_FORMS, **_ANIMAL_FORMS}.items()
    if form != singular or form.endswith("s")
}


def _have(s: Sentence, match: re.Match[str]) -> Iterator[Found]:
    who = _who(match)
    text = "User has " + who
    rest = s.text[match.end() :]
    named = (
        _NAMED.match(rest)
        or re.match(r"\s*,?\s*(?:now|too|as\s+well)?\s*,\s*(?=(?-i:[A-Z]))", rest, CI)
        or re.match(
            r"\s*,\s*(?:and\s+)?(?:his|her|its|their|the\s+\w+'s)\s+names?\s+(?:is|are|'s)\s+", rest, CI
        )
    )
    found: list[str] = []
    if named:
        found = names(
            rest[named.end() :],
            capitalised=not named.group(0).strip().startswith(("named", "called")),
            many=True,
        )
        found = [n for n in found if n.split()[0].lower() not in NOT_A_NAME]
        if found:
            verb = named["verb"].lower() if named.groupdict().get("verb") else "called"
            text += f" {verb} {joined(found)}"
    span_end = match.end() + (named.end() + len(", ".join(found)) if found and named else 0)
    yield fact(text, span=(match.start(), span_end), topics=[_topic(match["noun"])], entities=found)
