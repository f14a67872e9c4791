"""Offline extraction: date resolution and the rule-based extractor (no Redis, no LLM)."""

from datetime import UTC, date, datetime

import pytest

from memory.extraction.dates import find_dates, resolve_date, to_epoch
from memory.extraction.rules import MAX_SENTENCE_CHARS, RULES_VERSION, extract_candidates, third_person
from memory.extraction.types import Candidate, CandidateKind, TurnMessage
from memory.types import MemoryType

# A Tuesday afternoon; every relative date below resolves against it.
REFERENCE = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
AT = REFERENCE.timestamp()

SEMANTIC = MemoryType.SEMANTIC
EPISODIC = MemoryType.EPISODIC
PROCEDURAL = MemoryType.PROCEDURAL
FORGET = CandidateKind.FORGET


def _extract(*texts: str, role: str = "user") -> list[Candidate]:
    messages = [TurnMessage(role, text, AT, f"t{i}") for i, text in enumerate(texts, start=1)]
    return extract_candidates(messages)


def _expected(
    text: str,
    *,
    topics: list[str],
    entities: list[str] | None = None,
    slot: str = "",
    type_: MemoryType = SEMANTIC,
    kind: CandidateKind = CandidateKind.REMEMBER,
    event_date: date | None = None,
) -> Candidate:
    return Candidate(
        text=text,
        type=type_,
        kind=kind,
        topics=topics,
        entities=entities or [],
        event_date=None if event_date is None else to_epoch(event_date),
        slot=slot,
        source_turn_ids=["t1"],
    )


def _texts(*texts: str) -> list[str]:
    return [c.text for c in _extract(*texts)]


# --- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("today", date(2026, 11, 24)),
        ("tonight", date(2026, 11, 24)),
        ("this morning", date(2026, 11, 24)),
        ("yesterday", date(2026, 11, 23)),
        ("last night", date(2026, 11, 23)),
        ("tomorrow", date(2026, 11, 25)),
        ("the day before yesterday", date(2026, 11, 22)),
        ("the day after tomorrow", date(2026, 11, 26)),
        ("last week", date(2026, 11, 17)),
        ("next week", date(2026, 12, 1)),
        ("last month", date(2026, 10, 24)),
        ("next month", date(2026, 12, 24)),
        ("last year", date(2025, 11, 24)),
        ("next year", date(2027, 11, 24)),
        ("on Monday", date(2026, 11, 23)),
        ("last Monday", date(2026, 11, 23)),
        ("on Tuesday", date(2026, 11, 17)),  # the reference's own weekday: a week back
        ("last Sunday", date(2026, 11, 22)),
        ("this past Wednesday", date(2026, 11, 18)),
        ("next Monday", date(2026, 11, 30)),
        ("next Tuesday", date(2026, 12, 1)),
        ("2 days ago", date(2026, 11, 22)),
        ("three weeks ago", date(2026, 11, 3)),
        ("a month ago", date(2026, 10, 24)),
        ("2 years ago", date(2024, 11, 24)),
        ("a couple of days ago", date(2026, 11, 22)),
        ("in 3 days", date(2026, 11, 27)),
        ("in two weeks", date(2026, 12, 8)),
        ("in a month", date(2026, 12, 24)),
        ("2024-05-03", date(2024, 5, 3)),
        ("May 3", date(2026, 5, 3)),
        ("may 3", date(2026, 5, 3)),
        ("3 May", date(2026, 5, 3)),
        ("May 3rd, 2024", date(2024, 5, 3)),
        ("3rd of May 2023", date(2023, 5, 3)),
        ("the 3rd of May", date(2026, 5, 3)),
        ("Dec. 25th", date(2026, 12, 25)),
        ("September 1st 2025", date(2025, 9, 1)),
        ("  Yesterday. ", date(2026, 11, 23)),
    ],
)
def test_resolve_date_against_a_fixed_tuesday(expression, expected):
    assert resolve_date(expression, reference=REFERENCE) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "soon",
        "recently",
        "the other day",
        "in May",
        "May 2024",
        "Feb 30",
        "2024-13-01",
        "yesterday and today",
    ],
)
def test_resolve_date_returns_none_when_not_resolvable(expression):
    assert resolve_date(expression, reference=REFERENCE) is None


def test_month_arithmetic_clamps_to_the_end_of_the_month():
    assert resolve_date("a month ago", reference=datetime(2026, 3, 31, tzinfo=UTC)) == date(2026, 2, 28)
    assert resolve_date("last year", reference=datetime(2024, 2, 29, tzinfo=UTC)) == date(2023, 2, 28)


def test_tense_decides_yearless_dates_and_bare_weekdays():
    assert resolve_date("December 20", reference=REFERENCE) == date(2026, 12, 20)
    assert resolve_date("December 20", reference=REFERENCE, tense="past") == date(2025, 12, 20)
    assert resolve_date("May 3", reference=REFERENCE, tense="past") == date(2026, 5, 3)
    assert resolve_date("May 3", reference=REFERENCE, tense="future") == date(2027, 5, 3)
    assert resolve_date("on Monday", reference=REFERENCE, tense="future") == date(2026, 11, 30)
    assert resolve_date("last Monday", reference=REFERENCE, tense="future") == date(2026, 11, 23)
    assert resolve_date("May 3rd, 2024", reference=REFERENCE, tense="future") == date(2024, 5, 3)


def test_find_dates_returns_every_expression_in_text_order_with_its_span():
    text = "I flew in the day before yesterday, leave on May 3rd, 2027 and 2 days ago I was in Rome."
    assert find_dates(text, reference=REFERENCE) == [
        ("the day before yesterday", date(2026, 11, 22)),
        ("May 3rd, 2027", date(2027, 5, 3)),
        ("2 days ago", date(2026, 11, 22)),
    ]


def test_find_dates_ignores_may_and_march_as_verbs():
    assert find_dates("I may 3D-print it, we march 5 miles", reference=REFERENCE) == []
    assert find_dates("it is on may 5", reference=REFERENCE) == [("may 5", date(2026, 5, 5))]
    assert find_dates("I have 2 dogs and I'm 30 years old", reference=REFERENCE) == []


def test_to_epoch_is_midnight_utc():
    assert to_epoch(date(2026, 11, 23)) == datetime(2026, 11, 23, tzinfo=UTC).timestamp()
    assert to_epoch(date(1970, 1, 2)) == 86400.0


# --- third person -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "third"),
    [
        ("I live in Porto", "User lives in Porto"),
        ("I'm allergic to nuts", "User is allergic to nuts"),
        ("I am tired", "User is tired"),
        ("I've got a dog", "User has got a dog"),
        ("I have a sister", "User has a sister"),
        ("I went to Lisbon", "User went to Lisbon"),
        ("I really like my job", "User really likes User's job"),
        ("I don't eat meat", "User doesn't eat meat"),
        ("I can't swim", "User can't swim"),
        ("I watch films", "User watches films"),
        ("I study law", "User studies law"),
        ("I need glasses", "User needs glasses"),
        ("call me Al", "call User Al"),
        ("I hurt myself", "User hurt User"),
        ("my wife and I live in Braga", "User's wife and User live in Braga"),
        ("I started a job and I love it", "User started a job and User loves it"),
        ("i like tea", "User likes tea"),
    ],
)
def test_third_person(first, third):
    assert third_person(first) == third


# --- rules, one by one --------------------------------------------------------------------------


def test_rules_version_names_the_extractor():
    assert RULES_VERSION == "rules-v2"


def test_name_rule():
    assert _extract("My name is Alice.") == [
        _expected("User's name is Alice", topics=["identity"], entities=["Alice"], slot="name")
    ]
    assert _extract("Hi! I'm called Mary Jane Watson") == [
        _expected(
            "User's name is Mary Jane Watson", topics=["identity"], entities=["Mary Jane Watson"], slot="name"
        )
    ]
    assert _extract("Please call me Al.") == [
        _expected("User wants to be called Al", topics=["identity"], entities=["Al"], slot="nickname")
    ]
    assert _texts("Livvy here (Olivia if I'm in trouble)") == ["User's name is Livvy"]
    assert _texts("im ioana, 22, in my 4th year of med school") == [
        "User's name is ioana",
        "User is 22 years old",
    ]
    assert sorted(_texts("name's Kwame but everybody calls me Kwams")) == [
        "User goes by Kwams",
        "User's name is Kwame",
    ]
    assert _texts("my name's jo") == ["User's name is jo"]


def test_location_rule():
    assert _extract("I live in Porto.") == [
        _expected("User lives in Porto", topics=["location"], entities=["Porto"], slot="location")
    ]
    assert _texts("I'm living in New York City now") == ["User lives in New York City"]
    assert _texts("I'm based in London for work.") == ["User lives in London"]
    assert _texts("I moved from Lisbon to Porto in 2020.") == ["User lives in Porto"]
    assert _texts("My wife and I live in Lisbon, Portugal.") == ["User lives in Lisbon"]


def test_moving_with_a_date_is_also_an_event():
    assert _extract("I moved to Berlin last year.") == [
        _expected("User lives in Berlin", topics=["location"], entities=["Berlin"], slot="location"),
        _expected(
            "User moved to Berlin on 24 November 2025",
            topics=["events"],
            type_=EPISODIC,
            event_date=date(2025, 11, 24),
        ),
    ]


def test_job_rule():
    assert _extract("I work as a nurse.") == [_expected("User works as a nurse", topics=["work"], slot="job")]
    assert _texts("I'm an engineer by profession") == ["User works as an engineer"]
    assert _texts("My job is a teacher") == ["User works as a teacher"]
    assert _texts("my profession is architect") == ["User works as an architect"]


def test_employer_rule():
    assert _extract("I work at Acme.") == [
        _expected("User works at Acme", topics=["work"], entities=["Acme"], slot="employer")
    ]
    assert _texts("I'm working for the city council since 2019") == ["User works for the city council"]
    # One fact answers both "what is my job" and "where do I work".
    assert _extract("I work as a software engineer at Google") == [
        _expected(
            "User works as a software engineer at Google", topics=["work"], entities=["Google"], slot="job"
        )
    ]
    assert _texts("I'm a nurse at St. Mary's") == ["User works as a nurse at St. Mary's"]
    assert _texts("Being a pharmacist during flu season is chaos") == ["User works as a pharmacist"]
    assert _texts("I teach maths at a high school in Soweto, so weekends are sacred") == [
        "User teaches maths at a high school in Soweto"
    ]


def test_like_rule():
    assert _extract("I really like hiking!") == [_expected("User likes hiking", topics=["preferences"])]
    assert _texts("I love hiking, swimming and cycling.") == ["User likes hiking, swimming and cycling"]
    assert _texts("I'm a big fan of jazz") == ["User likes jazz"]
    assert _texts("I enjoy cooking for my family") == ["User likes cooking for User's family"]


def test_dislike_rule():
    assert _extract("I don't like olives.") == [_expected("User dislikes olives", topics=["preferences"])]
    assert _texts("I hate waking up early") == ["User dislikes waking up early"]
    assert _texts("I really can't stand loud music") == ["User dislikes loud music"]
    assert _texts("I'm not a fan of horror films") == ["User dislikes horror films"]


def test_prefer_rule_without_a_change_has_no_slot():
    assert _extract("I prefer Rust over Go.") == [
        _expected("User prefers Rust over Go", topics=["preferences"])
    ]
    assert _texts("I prefer tea to coffee") == ["User prefers tea over coffee"]
    assert _texts("I prefer to walk to work") == ["User prefers to walk to work"]


def test_changed_preference_gets_a_slot_keyed_on_what_it_replaces():
    assert _extract("These days I prefer tea over the Coffee.") == [
        _expected("User prefers tea over the Coffee", topics=["preferences"], slot="preference:coffee")
    ]
    assert _extract("I've switched from vim to Emacs") == [
        _expected("User prefers Emacs over vim", topics=["preferences"], slot="preference:vim")
    ]
    assert _extract("I now prefer dark mode.") == [
        _expected("User prefers dark mode", topics=["preferences"], slot="preference")
    ]
    assert [(c.text, c.slot) for c in _extract("I prefer tabs now. I switched to Linux.")] == [
        ("User prefers tabs", "preference"),
        ("User prefers Linux", "preference"),
    ]


def test_pets_rule():
    assert _extract("I have a dog named Rex.") == [
        _expected("User has a dog named Rex", topics=["pets"], entities=["Rex"])
    ]
    assert _extract("I've got two cats called Miso and Tofu") == [
        _expected("User has two cats called Miso and Tofu", topics=["pets"], entities=["Miso", "Tofu"])
    ]
    assert _extract("My dog's name is Rex") == [
        _expected("User's dog is called Rex", topics=["pets"], entities=["Rex"])
    ]
    assert _texts("I have a guinea pig.") == ["User has a guinea pig"]
    assert _texts("my corgi Waffles is 2 and already famous") == ["User's corgi Waffles is 2"]
    assert _texts("my dog is a Tibetan mastiff called Bhote") == [
        "User's dog is a Tibetan mastiff called Bhote"
    ]
    assert _texts("we have three Alaskan huskies, Storm, Nova and Balder") == [
        "User has three Alaskan huskies called Storm, Nova and Balder"
    ]
    assert _texts("I have a cat allergy.") == ["User has a cat allergy"], "an allergy is no cat"


def test_family_rule():
    assert _extract("My sister is called Ana.") == [
        _expected("User's sister is called Ana", topics=["family"], entities=["Ana"])
    ]
    assert _extract("My little brother is Tom") == [
        _expected("User's little brother is Tom", topics=["family"], entities=["Tom"])
    ]
    assert _texts("My wife is named Ana and my son is called Tiago.") == [
        "User's wife is called Ana",
        "User's son is called Tiago",
    ]
    assert _extract("I have a daughter") == [_expected("User has a daughter", topics=["family"])]
    assert _texts("My son Kenji just turned 4") == ["User's son Kenji just turned 4"]
    assert _texts("my husband Emeka made jollof for dinner") == ["User's husband is called Emeka"]
    assert _texts("my wife says I'm way less grumpy") == [], "typed with capitals, 'says' is no name"


def test_remember_rule():
    assert _extract("Remember that I'm allergic to nuts.") == [
        _expected("User is allergic to nuts", topics=["health", "remembered"])
    ]
    assert _extract("Can you remember that I'm vegan?") == [
        _expected("User is vegan", topics=["diet", "remembered"], slot="diet")
    ]
    assert _extract("Please remember that my locker code is 4521.") == [
        _expected("User's locker code is 4521", topics=["about-user", "remembered"])
    ]
    # A birthday comes back every year: no year is invented for it.
    assert _extract("Please remember my birthday is May 3") == [
        _expected("User's birthday is 3 May", topics=["birthdays", "remembered"])
    ]


def test_remembered_fact_merges_with_the_rule_that_also_reads_it():
    assert _extract("Please remember that my sister is called Ana.") == [
        _expected("User's sister is called Ana", topics=["family", "remembered"], entities=["Ana"])
    ]


def test_remembered_instruction_is_procedural():
    assert _extract("Remember to always reply in French.") == [
        _expected("Always reply in French", topics=["remembered"], type_=PROCEDURAL)
    ]
    assert _extract("Don't forget: never use emojis") == [
        _expected("Never use emojis", topics=["remembered"], type_=PROCEDURAL)
    ]
    assert _extract("Remember that if I ask for code, reply in Python.") == [
        _expected("If User asks for code, reply in Python", topics=["remembered"], type_=PROCEDURAL)
    ]
    assert _extract("Remember to call me Al") == [
        _expected(
            "User wants to be called Al", topics=["identity", "remembered"], entities=["Al"], slot="nickname"
        ),
        _expected("Call User Al", topics=["remembered"], type_=PROCEDURAL),
    ]


def test_remembered_dated_fact_is_an_event():
    assert _extract("Don't forget that I have a dentist appointment on May 3rd.") == [
        _expected(
            "User has a dentist appointment on 3 May 2027",
            topics=["events", "remembered"],
            type_=EPISODIC,
            event_date=date(2027, 5, 3),
        )
    ]


def test_forget_rule():
    assert _extract("Forget that I live in Porto.") == [
        _expected("User lives in Porto", topics=[], kind=FORGET)
    ]
    assert _extract("Oh, and please forget about my sister") == [
        _expected("User's sister", topics=[], kind=FORGET)
    ]
    assert _extract("Stop remembering that I like olives") == [
        _expected("User likes olives", topics=[], kind=FORGET)
    ]
    assert _extract("Could you forget that I went to Lisbon yesterday?") == [
        _expected("User went to Lisbon on 23 November 2026", topics=[], kind=FORGET)
    ]
    assert _texts("Forget what I said about Lisbon") == ["Lisbon"]


def test_forget_without_a_specific_object_yields_nothing():
    for text in (
        "Forget it.",
        "forget about it",
        "Forget that",
        "Please forget everything",
        "forget what I said",
    ):
        assert _extract(text) == [], text


def test_event_rule():
    assert _extract("I went to Lisbon yesterday.") == [
        _expected(
            "User went to Lisbon on 23 November 2026",
            topics=["events"],
            type_=EPISODIC,
            event_date=date(2026, 11, 23),
        )
    ]
    # A birth date is who someone is: semantic, with the yearly birthday beside it.
    assert _extract("My daughter was born on 2019-04-02") == [
        _expected("User's daughter's birthday is 2 April", topics=["birthdays"]),
        _expected(
            "User's daughter was born on 2 April 2019", topics=["birthdays"], event_date=date(2019, 4, 2)
        ),
    ]


def test_event_dates_follow_the_tense_and_the_sentence_shape():
    cases = {
        "Yesterday I went to Lisbon.": ("User went to Lisbon on 23 November 2026", date(2026, 11, 23)),
        "I have a dentist appointment on May 3rd": (
            "User has a dentist appointment on 3 May 2027",
            date(2027, 5, 3),
        ),
        "I have a dentist appointment on Monday": (
            "User has a dentist appointment on 30 November 2026",
            date(2026, 11, 30),
        ),
        "I have a dentist appointment this Friday": (
            "User has a dentist appointment on 27 November 2026",
            date(2026, 11, 27),
        ),
        "my final exam is on the 18th": ("User's final exam is on 18 December 2026", date(2026, 12, 18)),
        "I went to Lisbon on December 20": ("User went to Lisbon on 20 December 2025", date(2025, 12, 20)),
        "I saw my sister last Monday": ("User saw User's sister on 23 November 2026", date(2026, 11, 23)),
        "I got married 3 years ago": ("User got married on 24 November 2023", date(2023, 11, 24)),
        "In 3 days I fly to Rome": ("User flies to Rome on 27 November 2026", date(2026, 11, 27)),
        "my parents are flying in in exactly two weeks": (
            "User's parents are flying in on 8 December 2026",
            date(2026, 12, 8),
        ),
        "I've been sick since yesterday": ("User has been sick since 23 November 2026", date(2026, 11, 23)),
        "Yesterday, my sister and I went hiking and it was great": (
            "On 23 November 2026, User's sister and User went hiking and it was great",
            date(2026, 11, 23),
        ),
    }
    for text, (expected, day) in cases.items():
        [candidate] = _extract(text)
        assert (candidate.text, candidate.event_date, candidate.type) == (expected, to_epoch(day), EPISODIC)


def test_event_date_resolves_against_each_message_time():
    earlier = datetime(2026, 1, 10, 9, tzinfo=UTC).timestamp()
    [candidate] = extract_candidates([TurnMessage("user", "I went skiing yesterday", earlier, "t9")])
    assert candidate.text == "User went skiing on 9 January 2026"
    assert candidate.event_date == to_epoch(date(2026, 1, 9))
    assert candidate.source_turn_ids == ["t9"]


# --- what must not produce candidates -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # questions
        "Do you know where I live?",
        "where do I live",
        "What's my name?",
        "Did I tell you I work at Acme?",
        "Can you remember where I live?",
        # hypotheticals and wishes
        "If I lived in Paris I'd be happy.",
        "If I live in Paris, I'll be happy.",
        "I wish I lived in Paris.",
        "Suppose I worked at Google.",
        "Imagine my name is Bob.",
        "I'd like to live in Paris.",
        "I think I might move to Paris next year.",
        "I'd love to visit Rome next year.",
        # negations and hedges
        "I don't think I like sushi.",
        "I don't know if I like sushi.",
        "I used to live in Paris.",
        # states of the moment, opinions and other near misses
        "I'm tired.",
        "I'm so excited, I'm going to the shop",
        "I need a recipe for tonight",
        "I think that's a great idea",
        "My name is not important.",
        "Call me crazy",
        "I love you.",
        "I like that you remember things.",
        "I love it when it rains.",
        "My job is boring.",
        "Remember to buy milk.",
        "The weather was great yesterday.",
        "I may go to Lisbon.",
        "",
    ],
)
def test_no_candidates(text):
    assert _extract(text) == []


def test_assistant_messages_are_never_a_source():
    messages = [
        TurnMessage(
            "assistant", "Your name is Bob and you live in Paris. I went to Rome yesterday.", AT, "t1"
        ),
        TurnMessage("system", "My name is Root.", AT, "t1"),
        TurnMessage("user", "Thanks!", AT, "t1"),
    ]
    assert extract_candidates(messages) == []


# --- whole messages -----------------------------------------------------------------------------


def test_realistic_message_yields_the_expected_set():
    message = (
        "Hey! My name's Jo, I live in Braga and I work at Critical Software as a tester. "
        "I have a dog named Bolinha; my partner is called Sam. "
        "Yesterday I went to Porto with Sam. Do you know any good restaurants there? "
        "I don't like spicy food, but I love seafood. "
        "Oh, and please remember that I'm vegetarian on weekdays."
    )
    assert _extract(message) == [
        _expected("User's name is Jo", topics=["identity"], entities=["Jo"], slot="name"),
        _expected(
            "User works at Critical Software",
            topics=["work"],
            entities=["Critical Software"],
            slot="employer",
        ),
        _expected("User lives in Braga", topics=["location"], entities=["Braga"], slot="location"),
        _expected("User has a dog named Bolinha", topics=["pets"], entities=["Bolinha"]),
        _expected("User's partner is called Sam", topics=["family"], entities=["Sam"]),
        _expected(
            "User went to Porto with Sam on 23 November 2026",
            topics=["events"],
            type_=EPISODIC,
            event_date=date(2026, 11, 23),
        ),
        _expected("User likes seafood", topics=["preferences"]),
        _expected("User dislikes spicy food", topics=["preferences"]),
        _expected("User is vegetarian on weekdays", topics=["diet", "remembered"], slot="diet"),
    ]


def test_a_fact_repeated_across_turns_is_one_candidate_with_both_sources():
    candidates = _extract("I live in Porto.", "Remember that I live in Porto!")
    assert [(c.text, c.topics, c.slot, c.source_turn_ids) for c in candidates] == [
        ("User lives in Porto", ["location", "remembered"], "location", ["t1", "t2"])
    ]


def test_a_later_forget_replaces_an_earlier_remember_of_the_same_text():
    candidates = _extract("I like olives.", "Actually, forget that I like olives.")
    assert [(c.text, c.kind, c.source_turn_ids) for c in candidates] == [
        ("User likes olives", FORGET, ["t2"])
    ]


def test_pasted_walls_of_text_are_skipped_and_repetitive_input_stays_cheap():
    wall = "I live in Porto and " + "blah " * MAX_SENTENCE_CHARS
    assert _extract(wall) == []
    # Pathological repetition must neither make the regexes backtrack for long nor yield garbage.
    assert _texts("I work as a " * 80 + "nurse") == ["User works as a nurse"]
    assert _texts("My name is " * 80 + "Bob.") == ["User's name is Bob"]


def test_candidates_round_trip_through_dicts():
    for candidate in _extract("I went to Lisbon yesterday. My name is Alice. Forget that I like tea."):
        assert Candidate.from_dict(candidate.as_dict()) == candidate


# --- ordinary speech (the statements a first version missed) ---------------------------------------

ON_1_DECEMBER = datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp()


def _said_on_1_december(text: str) -> list[Candidate]:
    return extract_candidates([TurnMessage("user", text, ON_1_DECEMBER, "t1")])


@pytest.mark.parametrize(
    ("text", "expected", "slot"),
    [
        ("I'm vegetarian", "User is vegetarian", "diet"),
        ("I'm allergic to peanuts", "User is allergic to peanuts", ""),
        ("I'm lactose intolerant", "User is lactose intolerant", ""),
        ("My favourite band is Radiohead", "User's favourite band is Radiohead", "favourite:band"),
        ("I play the cello", "User plays the cello", ""),
        ("My son Kenji just turned 4", "User's son Kenji just turned 4", ""),
        ("I switched from coffee to green tea", "User prefers green tea over coffee", "preference:coffee"),
        ("Call me Priya", "User wants to be called Priya", "nickname"),
        ("I'm learning Spanish", "User is learning Spanish", ""),
        ("I've been living in Lisbon for 3 years", "User lives in Lisbon", "location"),
        ("I have type 1 diabetes so I watch my carbs", "User has type 1 diabetes", ""),
        ("I drive an old Land Cruiser", "User drives an old Land Cruiser", ""),
        ("I'm a vet nurse in Brisbane", "User works as a vet nurse in Brisbane", "job"),
        ("I grew up in Akureyri", "User grew up in Akureyri", ""),
        ("I'm from Recife originally", "User is from Recife", ""),
    ],
)
def test_ordinary_statements_are_learned(text, expected, slot):
    found = {c.text: c for c in _said_on_1_december(text)}
    assert expected in found, (text, list(found))
    assert found[expected].slot == slot


def test_a_move_that_names_the_old_place_forgets_it_and_keeps_the_new():
    found = [
        (c.text, c.kind, c.slot)
        for c in _said_on_1_december("I no longer live in Stockholm, I moved to Malmo")
    ]
    assert ("User lives in Malmo", CandidateKind.REMEMBER, "location") in found
    assert ("User lives in Stockholm", FORGET, "") in found


def test_a_yearless_birthday_is_yearly_and_an_upcoming_date_is_in_the_future():
    assert [(c.text, c.type, c.event_date) for c in _said_on_1_december("Ana's birthday is on 3 March")] == [
        ("Ana's birthday is 3 March", SEMANTIC, None)
    ]
    found = {c.text: c for c in _said_on_1_december("My daughter Ana turns 7 on 3 March")}
    assert found["User's daughter Ana's birthday is 3 March"].type == SEMANTIC
    turning = found["User's daughter Ana turns 7 on 3 March 2027"]
    assert turning.type == EPISODIC and turning.event_date == to_epoch(date(2027, 3, 3))
    assert found["User's daughter is called Ana"].topics == ["family"]


def test_a_statement_before_a_question_in_one_sentence_is_still_read():
    assert _texts("I live in Porto, do you know it?") == ["User lives in Porto"]
    assert _texts("our anniversary is 4 October, any gift ideas?") == ["User's anniversary is 4 October"]
    assert _texts("Where do I live?") == []


def test_quitting_something_retires_what_names_it():
    found = [(c.text, c.kind) for c in _extract("so I quit F45, my knees were wrecked")]
    assert ("User quit F45", CandidateKind.REMEMBER) in found
    assert ("F45", CandidateKind.SUPERSEDE) in found


def test_this_weekend_is_today_when_said_at_the_weekend():
    sunday = datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert resolve_date("this weekend", reference=sunday) == date(2026, 11, 29)
    assert resolve_date("next weekend", reference=sunday) == date(2026, 12, 5)
    assert resolve_date("this weekend", reference=REFERENCE) == date(2026, 11, 28)


@pytest.mark.parametrize(
    "hostile",
    [
        "\u00a0" * 8000,
        "\r" * 8000,
        "x" * 8000,
        "who am i " + "now " * 1900 + "x",
        "I'm a " * 1300,
        ("my dog Rex " * 100 + ". ") * 8,
        "I have a " * 880,
    ],
)
def test_hostile_messages_stay_cheap(hostile):
    """A guard against catastrophic backtracking (seconds, not milliseconds: not a speed target)."""
    import time

    from memory.recall import is_profile_question

    started = time.perf_counter()
    extract_candidates([TurnMessage("user", hostile[:8000], AT, "t1")])
    is_profile_question(hostile[:8000])
    assert time.perf_counter() - started < 3.0
