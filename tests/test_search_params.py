"""Retrieval knobs travel as a SearchParams value: a caller changes a search without patching a
module or overriding settings, and the eval and experiments do exactly that."""

import re
from dataclasses import replace
from pathlib import Path

import pytest
from django.test import override_settings

from bench import locomo
from chat.offline import compose_reply
from memory.prompt import build_prompt
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.search_params import SearchParams
from memory.services import NewMemory, add_memories
from memory.types import InvalidInput, Scope
from tests.memory_helpers import USER, scope

ROOT = Path(__file__).resolve().parent.parent
ALICE = MemoryFilter.build(user_id="alice")


@pytest.fixture
def alice_memories(redis_client):
    items = [
        NewMemory(text="Alice's dog is a beagle named Rex", scope=scope(), topics=["pets"]),
        NewMemory(text="Alice works as a nurse at the Porto hospital", scope=scope(), topics=["work"]),
        NewMemory(text="Alice's cat Tom sleeps on the dog's bed", scope=scope(), topics=["pets"]),
    ]
    return add_memories(items=items, actor=USER)


def test_explicit_params_change_the_search_and_leave_settings_alone(alice_memories, settings):
    before = SearchParams.from_settings()
    default = search_memories(filter=ALICE, text="What breed is my dog Rex?")
    assert default.hits and default.threshold == settings.RETRIEVAL_THRESHOLD

    strict = search_memories(
        filter=ALICE, text="What breed is my dog Rex?", params=replace(before, threshold=0.99)
    )
    assert strict.hits == [] and strict.threshold == 0.99
    assert {h.memory.text for h in strict.near_misses} >= {"Alice's dog is a beagle named Rex"}

    # Weights too: keyword only, the match is the squashed BM25 score (vector ignored).
    keyword_only = replace(
        before, vector_weight=0.0, recency_weight=0.0, session_weight=0.0, topic_weight=0.0
    )
    words = search_memories(filter=ALICE, text="beagle", threshold=0.0, params=keyword_only)
    top = words.hits[0]
    assert top.memory.text == "Alice's dog is a beagle named Rex"
    assert top.score.final == pytest.approx(top.score.keyword, abs=1e-4)
    assert top.score.final != pytest.approx(default.hits[0].score.final, abs=1e-4)

    # Nothing global moved.
    assert SearchParams.from_settings() == before
    assert search_memories(filter=ALICE, text="What breed is my dog Rex?").threshold == before.threshold


def test_an_explicit_argument_wins_over_its_param(alice_memories):
    params = replace(SearchParams.from_settings(), threshold=0.99, top_k=1)
    result = search_memories(filter=ALICE, text="my dog Rex", threshold=0.0, top_k=2, params=params)
    assert result.threshold == 0.0 and len(result.hits) == 2


def test_from_settings_reflects_override_settings():
    with override_settings(
        RETRIEVAL_THRESHOLD=0.42,
        RETRIEVAL_RELATIVE_THRESHOLD=0.7,
        HYBRID_VECTOR_WEIGHT=0.9,
        HYBRID_KEYWORD_WEIGHT=0.1,
        RECENCY_WEIGHT=0.0,
        RECENCY_HALF_LIFE_DAYS=7.0,
        RETRIEVAL_SESSION_WEIGHT=0.3,
        RETRIEVAL_NEIGHBOUR_WEIGHT=0.4,
        RETRIEVAL_TOPIC_WEIGHT=0.5,
        RETRIEVAL_TOP_K=4,
        RETRIEVAL_NEAR_MISSES=1,
    ):
        params = SearchParams.from_settings()
    assert (params.threshold, params.relative_threshold) == (0.42, 0.7)
    assert (params.vector_weight, params.keyword_weight, params.recency_weight) == (0.9, 0.1, 0.0)
    assert (params.recency_half_life_days, params.session_weight) == (7.0, 0.3)
    assert (params.neighbour_weight, params.topic_weight) == (0.4, 0.5)
    assert (params.top_k, params.near_misses) == (4, 1)
    assert SearchParams.from_settings().threshold != 0.42


def test_from_settings_follows_a_changed_setting_at_once(settings):
    """It is kept between searches: a setting changed later (pytest's `settings`, override_settings)
    must not be answered with the old value."""
    first = SearchParams.from_settings()
    assert SearchParams.from_settings() is first
    settings.RETRIEVAL_SESSION_WEIGHT = first.session_weight + 1
    assert SearchParams.from_settings().session_weight == first.session_weight + 1


def test_params_read_while_a_setting_changes_are_not_kept(settings, monkeypatch):
    """A search reads the settings, a setting changes (the cache is cleared) before it stores what
    it read: what it read is stale and must not be kept for the next search."""
    read = SearchParams._read_settings
    changed: list[float] = []

    def read_then_a_setting_changes() -> SearchParams:
        params = read()
        if not changed:
            changed.append(params.session_weight + 1)
            settings.RETRIEVAL_SESSION_WEIGHT = changed[0]  # sends setting_changed
        return params

    settings.RETRIEVAL_SESSION_WEIGHT = 0.25  # starts with an empty cache
    monkeypatch.setattr(SearchParams, "_read_settings", staticmethod(read_then_a_setting_changes))
    assert SearchParams.from_settings().session_weight == 0.25  # read before the change
    assert SearchParams.from_settings().session_weight == changed[0] == 1.25


@pytest.mark.parametrize(
    "change",
    [
        {"threshold": -0.1},
        {"vector_weight": "a lot"},
        {"top_k": 0},
        {"min_candidates": 0},
        {"topic_weight": True},
    ],
)
def test_a_bad_param_is_a_clear_error(change):
    with pytest.raises(InvalidInput, match=r"top_k|search parameter"):
        replace(SearchParams.from_settings(), **change)


def test_the_prompt_searches_with_its_params_and_its_trace_saves_their_weights(alice_memories):
    params = replace(SearchParams.from_settings(), threshold=0.99, session_weight=0.25)
    built = build_prompt(
        user_id="alice", session_id="s-1", message="my dog Rex", save_trace=False, params=params
    )
    assert built.memories == [] and built.trace.threshold == 0.99
    assert built.trace.weights["session"] == 0.25
    shipped = build_prompt(user_id="alice", session_id="s-1", message="my dog Rex", save_trace=False)
    assert (
        shipped.memories and shipped.trace.weights["session"] == SearchParams.from_settings().session_weight
    )


def test_the_offline_reply_takes_its_share_of_the_best_as_a_parameter(alice_memories):
    built = build_prompt(
        user_id="alice",
        session_id="s-1",
        message="Tell me about my dog and my cat",
        save_trace=False,
        params=replace(SearchParams.from_settings(), threshold=0.0, relative_threshold=0.0),
    )
    assert len([h for h in built.memories if h.reason == "match"]) >= 2
    everything = compose_reply(built, "", scope=Scope(user_id="alice"), shown_share_of_best=0.0)
    best_only = compose_reply(built, "", scope=Scope(user_id="alice"), shown_share_of_best=1.0)
    assert everything.count("•") > best_only.count("•") == 1


def test_eval_runs_carry_search_params_not_settings():
    for spec in locomo.DEFAULT_RUNS:
        params = spec.search_params()  # every override names a real field
        for name, value in spec.params.items():
            assert getattr(params, name) == value
    with pytest.raises(TypeError):
        locomo.RunSpec("x", "hybrid", "", params={"RETRIEVAL_THRESHOLD": 0.0}).search_params()


RETRIEVAL_SETTINGS = re.compile(
    r"override_settings\([^)]*\b(RETRIEVAL_\w+|HYBRID_\w+|RECENCY_\w+)\s*=|settings\.(RETRIEVAL_\w+|HYBRID_\w+|"
    r"RECENCY_\w+)\s*=",
    re.DOTALL,
)


def test_the_eval_and_experiments_patch_nothing():
    """bench/ (the LoCoMo eval, bench/locomo.py, included) passes parameters: no mock.patch of engine
    modules, no retrieval settings overridden or assigned."""
    files = sorted((ROOT / "bench").rglob("*.py"))
    assert ROOT / "bench" / "locomo.py" in files
    assert len(files) > 10
    for path in files:
        text = path.read_text()
        assert not re.search(r"mock\.patch|monkeypatch|from unittest import mock", text), path
        found = RETRIEVAL_SETTINGS.search(text)
        assert found is None, f"{path}: {found.group(0) if found else ''}"
