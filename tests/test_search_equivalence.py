"""The two-round-trip search ranks exactly as the previous three-round-trip path (tests/search_reference.py)
on a seeded corpus in the real Redis: same hits, near misses, score breakdowns and cut, in every mode,
with the scope's word counts cold and cached."""

import random
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
import redis.client

from memory.query import MemoryFilter, keyword_clause, keyword_terms
from memory.search import search_memories
from memory.search_params import SearchParams
from memory.services import NewMemory, add_memories
from memory.term_stats import counted_keyword_search, drop_common_terms, forget_term_counts, scope_word_counts
from tests import search_reference
from tests.memory_helpers import USER, scope

DIMS = 384
# "alice" and "garden" are in most of alice's memories: BM25 must leave them out of her searches.
_WORD_LIST = """kayak piano lisbon porto beagle nurse marathon café naïve jazz sushi hiking chess tokyo violin
paella museum tennis yoga pottery sailing salsa karaoke ramen kimchi tapas opera ballet poetry
cycling surfing archery fencing rowing climbing knitting origami baking camping fishing"""
WORDS = _WORD_LIST.split()
TOPICS = ["pets", "work", "hobbies", "travel", "health"]
QUESTIONS = [
    "What did Alice say about the kayak in Lisbon?",
    "Does alice like jazz or piano?",
    "Where is the garden, Alice?",
    "alice garden",
    "kayak",
    "Which café in Porto serves sushi?",
    "Is she naïve about chess?",
    "What pets does Alice have, a beagle?",
    "Tell me about her work as a nurse",
    "hiking Tokyo marathon plans",
    "Who is Bob?",
    "zebra quantum",
]


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _seed_corpus(rng: random.Random, np_rng: np.random.Generator) -> list[np.ndarray]:
    """Two users: alice with more memories than the KNN candidate pool (so keyword-only hits need
    their own vectors), bob with a small scope; sessions, ages, types and topics all mixed."""
    centres = [_unit(np_rng.normal(size=DIMS)) for _ in range(12)]
    now = time.time()
    items = []
    for user, count in (("alice", 230), ("bob", 40)):
        for n in range(count):
            words = rng.sample(WORDS, rng.randint(1, 3))
            common = ["Alice", "garden"] if user == "alice" and rng.random() < 0.8 else []
            items.append(
                NewMemory(
                    text=" ".join([*common, *words, f"note {n}"]),
                    scope=scope(
                        user_id=user, session_id=f"s{rng.randrange(8)}" if rng.random() < 0.7 else ""
                    ),
                    type=rng.choice(["semantic", "episodic", "procedural", "message"]),
                    topics=rng.sample(TOPICS, rng.randint(0, 2)),
                    created_at=now - rng.uniform(0, 300) * 86400,
                    embedding=_unit(rng.choice(centres) + np_rng.normal(scale=0.6, size=DIMS)),
                )
            )
    add_memories(items=items, actor=USER)
    return centres


def _comparable(result: Any) -> tuple[Any, ...]:
    return (
        [(hit.memory, hit.score) for hit in result.hits],
        [(hit.memory, hit.score) for hit in result.near_misses],
        result.cut,
        result.threshold,
        result.mode,
    )


@pytest.fixture
def corpus() -> list[np.ndarray]:
    forget_term_counts()
    return _seed_corpus(random.Random(17), np.random.default_rng(17))


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_the_new_search_returns_exactly_what_the_reference_path_returns(corpus, mode):
    np_rng = np.random.default_rng(5)
    now = time.time()
    compared = keyword_hits = 0
    for user in ("alice", "bob"):
        for text in QUESTIONS:
            vector = (
                None
                if mode == "keyword"
                else _unit(corpus[compared % len(corpus)] + np_rng.normal(size=DIMS))
            )
            ask = {
                "filter": MemoryFilter.build(user_id=user),
                "text": text,
                "mode": mode,
                "top_k": 20,
                "query_vector": vector,
                "now": now,
                "threshold": 0.05,
            }
            forget_term_counts()
            expected = search_reference.search_memories(**ask)
            forget_term_counts()
            cold = search_memories(**ask)
            warm = search_memories(**ask)  # the counts the cold search cached
            assert _comparable(cold) == _comparable(expected), (user, text)
            assert _comparable(warm) == _comparable(expected), (user, text)
            compared += 1
            keyword_hits += sum(hit.score.bm25_raw > 0 for hit in cold.hits)
    assert compared == 2 * len(QUESTIONS)
    assert (keyword_hits > 10) == (mode != "semantic"), "the corpus exercises the keyword side"


@pytest.fixture
def round_trips() -> Iterator[list[str]]:
    """Every pipeline execute and single command sent while active."""
    sent: list[str] = []
    pipeline_execute, command_execute = redis.client.Pipeline.execute, redis.Redis.execute_command

    def pipeline(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append("pipeline")
        return pipeline_execute(self, *args, **kwargs)

    def command(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]))
        return command_execute(self, *args, **kwargs)

    redis.client.Pipeline.execute = pipeline
    redis.Redis.execute_command = command
    try:
        yield sent
    finally:
        redis.client.Pipeline.execute = pipeline_execute
        redis.Redis.execute_command = command_execute


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_a_search_of_a_scope_not_counted_yet_takes_at_most_two_round_trips(corpus, round_trips, mode):
    search_memories(filter=MemoryFilter.build(user_id="alice"), text="warm up", query_vector=corpus[0])
    for text in ("What did Alice say about the kayak in Lisbon?", "alice garden", "kayak"):
        forget_term_counts()
        round_trips.clear()
        search_memories(
            filter=MemoryFilter.build(user_id="alice"),
            text=text,
            mode=mode,
            query_vector=None if mode == "keyword" else corpus[1],
            threshold=0,
        )
        assert len(round_trips) <= 2, (text, round_trips)


def test_the_server_side_keyword_search_builds_the_query_and_drops_the_words_as_python_does(corpus):
    from core.redis_client import get_redis

    params = SearchParams.from_settings()
    for text, left in (("Alice's garden: kayak, café and naïve jazz?", 3), ("alice garden", 1)):
        base = MemoryFilter.build(user_id="alice").query(now=time.time())
        terms = keyword_terms(text)
        forget_term_counts()
        search = counted_keyword_search(
            base,
            terms,
            cache_key=None,
            params=params,
            limit=60,
            return_fields=["created_at"],
            vectors_above=None,
        )
        counts, kept, query, reply = search.absorb(get_redis().execute_command(*search.command))
        forget_term_counts()
        expected = scope_word_counts(base, terms)
        assert (counts.total, counts.per_term) == (expected.total, expected.per_term)
        assert kept == drop_common_terms(terms, expected, params=params)
        assert len(kept) == left, "common words dropped; all common: the rarest stays"
        assert query == f"{base} {keyword_clause(kept)}"
        assert int(reply[0]) > 0


@pytest.mark.parametrize(
    "text",
    [
        "What PETS do I have?",
        "my Dog and my CAR",
        "When is the WEDDING?",
        "Ünïcode: my DOG's vet, café",
        "nothing",
    ],
)
def test_query_topics_matches_the_case_insensitive_cues_on_any_text(text):
    from memory.topics import _PATTERNS, query_topics

    expected: list[str] = []
    for topics, pattern in _PATTERNS:
        if pattern.search(text):
            expected += [t for t in topics if t not in expected]
    assert query_topics(text) == expected
    assert expected or text == "nothing"


def test_escape_tag_escapes_exactly_the_ascii_characters_that_are_not_letters_digits_or_underscore():
    from memory.query import escape_tag

    rng = random.Random(3)
    alphabet = [chr(c) for c in range(128)] + list("éü中\u2019\U0001f600\ud800")
    for _ in range(2000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        expected = "".join(
            ch if ch.isascii() is False or ch.isalnum() or ch == "_" else "\\" + ch for ch in value
        )
        assert escape_tag(value) == expected
