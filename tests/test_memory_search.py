"""Search: modes, score breakdowns, filters, escaping of hostile ids, near misses, dedup, counts."""

import time
from typing import Any

import numpy as np
import pytest

from memory.query import MemoryFilter, escape_tag, keyword_terms
from memory.search import search_memories
from memory.selectors import counts_by_type, find_exact_duplicates, find_similar, list_memories
from memory.services import NewMemory, add_memories, add_memory
from memory.types import InvalidInput
from tests.memory_helpers import USER, scope


def _texts(result):
    return [hit.memory.text for hit in result.hits]


@pytest.fixture
def alice_memories():
    items = [
        NewMemory(text="Alice's dog is a beagle named Rex", scope=scope(), topics=["pets"], entities=["Rex"]),
        NewMemory(text="Alice works as a nurse at the Porto hospital", scope=scope(), topics=["work"]),
        NewMemory(text="Alice prefers Python over Java", scope=scope(), topics=["programming"]),
        NewMemory(
            text="Alice ran the Lisbon marathon",
            scope=scope(),
            type="episodic",
            topics=["sport"],
            event_date=1_690_000_000.0,
        ),
        NewMemory(text="Always answer Alice in short bullet points", scope=scope(), type="procedural"),
    ]
    return add_memories(items=items, actor=USER)


def test_hybrid_search_ranks_the_relevant_memory_first_with_a_full_breakdown(alice_memories, settings):
    result = search_memories(
        filter=MemoryFilter.build(user_id="alice"), text="What breed is my dog Rex?", threshold=0
    )
    top = result.hits[0]
    assert top.memory.text == "Alice's dog is a beagle named Rex"
    assert top.score.vector > 0.3
    assert top.score.keyword > 0
    assert top.score.bm25_raw > 0
    assert 0.99 < top.score.recency <= 1.0
    wv, wk, wr = settings.HYBRID_VECTOR_WEIGHT, settings.HYBRID_KEYWORD_WEIGHT, settings.RECENCY_WEIGHT
    match = (wv * top.score.vector + wk * top.score.keyword + wr * top.score.recency) / (wv + wk + wr)
    # No session: the memory stands alone, its context is its own match.
    assert top.score.session == top.score.neighbour == pytest.approx(match, abs=1e-6)
    # "dog" is a pets question and the memory is filed under pets: the topic bonus on top.
    assert top.score.topic == 1.0
    wt = settings.RETRIEVAL_TOPIC_WEIGHT
    assert top.score.final == pytest.approx((match + wt) / (1 + wt), abs=1e-6)
    assert result.mode == "hybrid" and result.threshold == 0


def test_the_topic_bonus_lifts_a_memory_filed_under_what_the_question_is_about(settings):
    add_memories(
        items=[
            NewMemory(text="Bolt is golden and three years old", scope=scope(), topics=["pets"]),
            NewMemory(text="Bolt is three years old and growing", scope=scope(), topics=["work"]),
        ],
        actor=USER,
    )

    def ranked(question: str) -> list[tuple[str, float]]:
        hits = search_memories(filter=MemoryFilter.build(user_id="alice"), text=question, threshold=0).hits
        return [(h.memory.text, h.score.topic) for h in hits]

    # The same words, filed under different topics: the question's topic decides.
    assert ranked("How old is my pet Bolt?")[0] == ("Bolt is golden and three years old", 1.0)
    assert ranked("How old is my company Bolt?")[0] == ("Bolt is three years old and growing", 1.0)
    settings.RETRIEVAL_TOPIC_WEIGHT = 0  # off: no topic, the final score is the plain match again
    hit = search_memories(filter=MemoryFilter.build(user_id="alice"), text="my pet Bolt", threshold=0).hits[0]
    wv, wk, wr = settings.HYBRID_VECTOR_WEIGHT, settings.HYBRID_KEYWORD_WEIGHT, settings.RECENCY_WEIGHT
    match = (wv * hit.score.vector + wk * hit.score.keyword + wr * hit.score.recency) / (wv + wk + wr)
    assert hit.score.topic == 0.0 and hit.score.final == pytest.approx(match, abs=1e-6)


def test_raw_turns_get_no_topic_bonus(settings):
    add_memories(
        items=[NewMemory(text="my dog Rex loves the beach", scope=scope(), type="message", topics=["pets"])],
        actor=USER,
    )
    [hit] = search_memories(filter=MemoryFilter.build(user_id="alice"), text="my dog?", threshold=0).hits
    assert hit.score.topic == 0.0


def test_semantic_search_finds_meaning_without_shared_words(alice_memories):
    result = search_memories(
        filter=MemoryFilter.build(user_id="alice"),
        text="Which coding language do I like?",
        mode="semantic",
        threshold=0,
    )
    assert result.hits[0].memory.text == "Alice prefers Python over Java"
    assert all(hit.score.keyword == 0 for hit in result.hits)


def test_keyword_search_uses_bm25_only(alice_memories):
    result = search_memories(
        filter=MemoryFilter.build(user_id="alice"), text="marathon", mode="keyword", threshold=0
    )
    assert _texts(result) == ["Alice ran the Lisbon marathon"]
    assert result.hits[0].score.vector == 0


def test_threshold_splits_hits_and_near_misses(alice_memories):
    result = search_memories(
        filter=MemoryFilter.build(user_id="alice"), text="beagle Rex", threshold=0.4, near_misses=2
    )
    assert _texts(result) == ["Alice's dog is a beagle named Rex"]
    assert len(result.near_misses) == 2
    assert all(miss.score.final < 0.4 for miss in result.near_misses)
    assert result.near_misses[0].score.final >= result.near_misses[1].score.final


def test_filters_on_type_topics_entities_and_time(alice_memories):
    base: dict[str, Any] = {"user_id": "alice"}
    by_type = search_memories(
        filter=MemoryFilter.build(**base, types=["procedural"]), text="answer style", threshold=0
    )
    assert _texts(by_type) == ["Always answer Alice in short bullet points"]
    by_topic = search_memories(
        filter=MemoryFilter.build(**base, topics=["work", "sport"]), text="Alice", threshold=0
    )
    assert sorted(_texts(by_topic)) == [
        "Alice ran the Lisbon marathon",
        "Alice works as a nurse at the Porto hospital",
    ]
    by_entity = search_memories(
        filter=MemoryFilter.build(**base, entities=["rex"]), text="Alice", threshold=0
    )
    assert _texts(by_entity) == ["Alice's dog is a beagle named Rex"]
    by_event = search_memories(
        filter=MemoryFilter.build(**base, event_after=1_680_000_000, event_before=1_700_000_000),
        text="Alice",
        threshold=0,
    )
    assert _texts(by_event) == ["Alice ran the Lisbon marathon"]
    future = search_memories(
        filter=MemoryFilter.build(**base, created_after=time.time() + 3600), text="Alice", threshold=0
    )
    assert future.hits == []


def test_scope_filters_on_agent_namespace_and_session():
    add_memory(
        text="Likes jazz", scope=scope(agent_id="music-bot", namespace="prod", session_id="s-1"), actor=USER
    )
    add_memory(
        text="Likes jazz too",
        scope=scope(agent_id="other-bot", namespace="prod", session_id="s-2"),
        actor=USER,
    )
    cases: tuple[tuple[dict[str, Any], list[str]], ...] = (
        ({"agent_id": "music-bot"}, ["Likes jazz"]),
        ({"namespace": "prod"}, ["Likes jazz", "Likes jazz too"]),
        ({"session_id": "s-2"}, ["Likes jazz too"]),
    )
    for kwargs, expected in cases:
        result = search_memories(
            filter=MemoryFilter.build(user_id="alice", **kwargs), text="jazz", threshold=0
        )
        assert sorted(_texts(result)) == expected


def test_recency_boost_prefers_the_newer_of_two_equal_memories(settings):
    settings.RECENCY_WEIGHT = 0.5
    settings.RECENCY_HALF_LIFE_DAYS = 30
    now = time.time()
    add_memories(
        items=[
            NewMemory(text="Favourite food is ramen", scope=scope(), created_at=now - 200 * 86400),
            NewMemory(text="Favourite food is ramen!", scope=scope(), created_at=now - 86400),
        ],
        actor=USER,
    )
    result = search_memories(
        filter=MemoryFilter.build(user_id="alice"), text="favourite food", threshold=0, now=now
    )
    assert result.hits[0].memory.text == "Favourite food is ramen!"
    assert result.hits[0].score.recency > 0.9 > 0.1 > result.hits[1].score.recency


def _unit(cosine: float, axis: int) -> np.ndarray:
    """A 384-d unit vector with the given cosine to the first axis."""
    vector = np.zeros(384, dtype=np.float32)
    vector[0] = cosine
    vector[axis] = np.sqrt(1 - cosine**2)
    return vector


def _conversation_memories() -> None:
    now = time.time()
    add_memories(
        items=[
            NewMemory(
                text="strong", scope=scope(session_id="s1"), embedding=_unit(1.0, 1), created_at=now - 60
            ),
            NewMemory(
                text="said next", scope=scope(session_id="s1"), embedding=_unit(0.3, 2), created_at=now - 50
            ),
            NewMemory(
                text="other session", scope=scope(session_id="s2"), embedding=_unit(0.35, 3), created_at=now
            ),
            NewMemory(text="no session", scope=scope(), embedding=_unit(0.35, 4), created_at=now),
        ],
        actor=USER,
    )


def _search_the_conversation():
    _conversation_memories()
    return search_memories(
        filter=MemoryFilter.build(user_id="alice"),
        text="anything",
        mode="semantic",
        query_vector=_unit(1.0, 1),
        threshold=0,
        relative_threshold=0,
    )


def test_a_memory_said_next_to_a_strong_match_in_its_session_is_pulled_up():
    result = _search_the_conversation()
    assert _texts(result) == ["strong", "said next", "no session", "other session"]
    strong, said_next, alone, other = (hit.score for hit in result.hits)
    # "said next" inherits the strong match twice: best of its session, and its neighbour.
    assert said_next.vector == pytest.approx(0.3, abs=1e-3)
    assert said_next.session == said_next.neighbour == pytest.approx(strong.session, abs=1e-6)
    assert strong.session > 0.95, "the best of its session is the strong match itself"
    # Alone in its session, with nobody said before/after it: its own match, no neighbour.
    assert other.neighbour == 0 and other.session < said_next.session
    assert alone.session == alone.neighbour == pytest.approx(alone.final, abs=1e-6)


def test_the_conversation_context_can_be_switched_off(settings):
    settings.RETRIEVAL_SESSION_WEIGHT = 0
    settings.RETRIEVAL_NEIGHBOUR_WEIGHT = 0
    result = _search_the_conversation()
    assert _texts(result)[0] == "strong" and _texts(result)[-1] == "said next"


HOSTILE_IDS = [
    "a|b",
    "a",
    "b",
    "*",
    "}",
    "{",
    "-x",
    "x",
    "a b",
    "@user_id:{a}",
    "Alice",
    "alice",
    "ünï",
    "a\\b",
    "a*",
]


def test_hostile_user_ids_only_ever_match_themselves():
    add_memories(
        items=[
            NewMemory(text=f"secret diary entry of {uid}", scope=scope(user_id=uid)) for uid in HOSTILE_IDS
        ],
        actor=USER,
    )
    for uid in HOSTILE_IDS:
        for mode in ("hybrid", "semantic", "keyword"):
            result = search_memories(
                filter=MemoryFilter.build(user_id=uid),
                text="secret diary entry",
                mode=mode,
                threshold=0,
                top_k=50,
            )
            assert {hit.memory.scope.user_id for hit in result.hits} == {uid}, (uid, mode)
            assert len(result.hits) == 1
        page = list_memories(filter=MemoryFilter.build(user_id=uid))
        assert [m.scope.user_id for m in page.memories] == [uid]
        assert counts_by_type(user_id=uid) == {"semantic": 1}


def test_query_syntax_in_search_text_is_harmless(alice_memories):
    for text in [
        "@user_id:{bob} | *",
        "-(dog)",
        '"unclosed',
        "=>[KNN 5 @embedding $vec]",
        "%%%fuzzy%%%",
        "}{)(][|",
    ]:
        result = search_memories(filter=MemoryFilter.build(user_id="alice"), text=text, threshold=0)
        assert {hit.memory.scope.user_id for hit in result.hits} <= {"alice"}


def test_invalid_filters_and_arguments_give_clear_errors():
    with pytest.raises(InvalidInput, match="user_id is required"):
        MemoryFilter.build(user_id="")
    with pytest.raises(InvalidInput, match="unknown memory type"):
        MemoryFilter.build(user_id="a", types=["facts"])
    with pytest.raises(InvalidInput, match="after' is later"):
        MemoryFilter.build(user_id="a", created_after=10, created_before=5)
    with pytest.raises(InvalidInput, match="must be a number"):
        MemoryFilter.build(user_id="a", created_after="yesterday")
    with pytest.raises(InvalidInput, match="control characters"):
        MemoryFilter.build(user_id="a\nb")
    with pytest.raises(InvalidInput, match="longer than"):
        MemoryFilter.build(user_id="x" * 500)
    with pytest.raises(InvalidInput, match="mode must be"):
        search_memories(filter=MemoryFilter.build(user_id="a"), text="hi", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="empty"):
        search_memories(filter=MemoryFilter.build(user_id="a"), text="  ")
    with pytest.raises(InvalidInput, match="top_k"):
        search_memories(filter=MemoryFilter.build(user_id="a"), text="hi", top_k=0)


def test_exact_and_semantic_duplicates_stay_in_scope():
    add_memory(text="I live in Porto", scope=scope(), actor=USER)
    add_memory(text="I live in Porto", scope=scope(user_id="bob"), actor=USER)
    alice = MemoryFilter.build(user_id="alice")
    exact = find_exact_duplicates(filter=alice, text="  i LIVE in   porto ")
    assert [m.scope.user_id for m in exact] == ["alice"]
    similar = find_similar(filter=alice, text="I am living in Porto", max_distance=0.3)
    assert [m.scope.user_id for m, _ in similar] == ["alice"]
    assert similar[0][1] < 0.3
    assert find_similar(filter=alice, text="My favourite fruit is mango", max_distance=0.3) == []


def test_counts_by_type_come_from_the_index(alice_memories):
    add_memory(text="Bob likes tea", scope=scope(user_id="bob"), actor=USER)
    assert counts_by_type(user_id="alice") == {"semantic": 3, "episodic": 1, "procedural": 1}
    assert counts_by_type(user_id="bob") == {"semantic": 1}
    assert counts_by_type(user_id="nobody") == {}


def test_list_memories_pages_newest_first():
    now = time.time()
    add_memories(
        items=[NewMemory(text=f"fact number {i}", scope=scope(), created_at=now - i) for i in range(7)],
        actor=USER,
    )
    first = list_memories(filter=MemoryFilter.build(user_id="alice"), limit=3)
    second = list_memories(filter=MemoryFilter.build(user_id="alice"), limit=3, offset=3)
    assert first.total == 7
    assert [m.text for m in first.memories] == ["fact number 0", "fact number 1", "fact number 2"]
    assert [m.text for m in second.memories] == ["fact number 3", "fact number 4", "fact number 5"]


def test_keyword_terms_and_escaping():
    assert keyword_terms("What's the name of Alice's dog, Rex?") == ["name", "alice", "dog", "rex"]
    assert keyword_terms("the and of") == []
    assert escape_tag("a|b-c d") == "a\\|b\\-c\\ d"


def test_words_common_to_most_of_a_users_memories_are_left_out_of_bm25():
    from memory.search_params import SearchParams
    from memory.term_stats import drop_common_terms, scope_word_counts

    def informative_terms(base: str, terms: list[str]) -> list[str]:  # as search_memories does
        counts = scope_word_counts(base, terms)
        return drop_common_terms(terms, counts, params=SearchParams.from_settings())

    items = [NewMemory(text=f"Alice talked about topic {n}", scope=scope()) for n in range(59)]
    items.append(NewMemory(text="Alice bought a kayak", scope=scope()))
    add_memories(items=items, actor=USER)
    base = MemoryFilter.build(user_id="alice").query(now=time.time())
    assert informative_terms(base, ["alice", "kayak"]) == ["kayak"]
    assert informative_terms(base, ["alice", "talked"]) == ["talked"], "all common: the rarest stays"
    small = MemoryFilter.build(user_id="bob").query(now=time.time())
    add_memories(items=[NewMemory(text="Bob likes Bob things", scope=scope(user_id="bob"))], actor=USER)
    assert informative_terms(small, ["bob", "things"]) == ["bob", "things"], "too few memories to judge"
    alice = MemoryFilter.build(user_id="alice")
    hits = search_memories(filter=alice, text="What did Alice buy, a kayak?").hits
    assert hits[0].memory.text == "Alice bought a kayak"


def test_keyword_only_hits_get_their_similarity_even_after_the_scope_outgrew_its_cached_count():
    """Small scopes skip vectors in the BM25 reply (the KNN side covers them all); a scope that grew
    past the KNN candidates since its count was cached fetches them instead of scoring 0."""
    add_memory(text="Notes about the weather", scope=scope(), actor=USER, embedding=_unit(0.5, 1))
    search_memories(filter=MemoryFilter.build(user_id="alice"), text="kayak trip", query_vector=_unit(1.0, 1))
    close = [
        NewMemory(text=f"unrelated note {n}", scope=scope(), embedding=_unit(0.9, 2 + n)) for n in range(200)
    ]
    add_memories(items=close, actor=USER)
    add_memory(text="Booked a kayak trip", scope=scope(), actor=USER, embedding=_unit(0.1, 300))
    result = search_memories(
        filter=MemoryFilter.build(user_id="alice"),
        text="kayak trip",
        query_vector=_unit(1.0, 1),
        top_k=100,
        threshold=0,
    )
    [kayak] = [hit for hit in result.hits if hit.memory.text == "Booked a kayak trip"]
    assert kayak.score.bm25_raw > 0
    assert kayak.score.vector == pytest.approx(0.1, abs=1e-3)
