"""Scope ids (user_id, agent_id, session_id, namespace) are TAG values: an id that RediSearch would
index as something else (split at the `,` separator, trimmed at the ends) is refused, so a memory
is only ever found under exactly the id it was stored with. Real embedded Redis, real index."""

from __future__ import annotations

import itertools
import unicodedata
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chat.identity import account_memory_id, anonymous_memory_id
from core.embeddings import get_embedder
from memory import working
from memory.extraction.queue import enqueue_turn
from memory.extraction.types import TurnMessage
from memory.query import MemoryFilter, validate_scope_id
from memory.search import search_memories
from memory.selectors import counts_by_type, list_memories
from memory.services import NewMemory, add_memories, add_memory
from memory.types import InvalidInput, Memory, Scope
from tests.memory_helpers import USER

SCOPE_FIELDS = ("user_id", "agent_id", "session_id", "namespace")
OWNER = "owner-1"  # the user of every memory when another scope field is under test

# (stored under, looked up as): before the fix the first was returned to the second.
CONFUSABLE = [
    ("alice,mallory", "alice"),
    ("alice,mallory", "mallory"),
    ("bob ", "bob"),
    (" bob", "bob"),
    ("bob\u00a0", "bob"),
    ("Alice", "alice"),
    ("ALICE", "Alice"),
]


def _scope(field: str, value: str) -> Scope:
    if field == "user_id":
        return Scope(user_id=value)
    return Scope(user_id=OWNER, **{field: value})


def _filter(field: str, value: str) -> MemoryFilter:
    if field == "user_id":
        return MemoryFilter.build(user_id=value)
    narrowed: dict[str, Any] = {field: value}
    return MemoryFilter.build(user_id=OWNER, **narrowed)


def _value(memory: Memory, field: str) -> str:
    return str(getattr(memory.scope, field))


def _accepted(value: str) -> bool:
    try:
        validate_scope_id(value, name="id")
    except InvalidInput:
        return False
    return True


def _store(field: str, value: str, text: str, vector: np.ndarray | None = None) -> Memory | None:
    """The memory, or None when the id is refused (then every way in must refuse it the same way)."""
    try:
        memory = add_memories(
            items=[NewMemory(text=text, scope=_scope(field, value), embedding=vector)], actor=USER
        )[0]
    except InvalidInput as exc:
        assert field in str(exc)
        with pytest.raises(InvalidInput):
            _filter(field, value)
        return None
    return memory


def _found(field: str, value: str) -> list[Memory]:
    return list_memories(filter=_filter(field, value), limit=500).memories


@pytest.mark.parametrize("field", SCOPE_FIELDS)
@pytest.mark.parametrize("value", ["_", "__", "a_b", "_|_"])
def test_underscore_ids_are_found_exactly(field: str, value: str) -> None:
    # `@user_id:{_}` is a syntax error in RediSearch 2.10: the filter must escape it.
    vector = np.ones(get_embedder().dims, dtype=np.float32)
    memory = _store(field, value, f"note {next(_counter)}", vector)
    assert memory is not None
    assert [m.id for m in _found(field, value)] == [memory.id]


# --- Refused, with a clear message ---------------------------------------------------------------


@pytest.mark.parametrize("field", SCOPE_FIELDS)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("alice,mallory", "may not contain a comma"),
        (",", "may not contain a comma"),
        ("bob ", "may not start or end with a space"),
        (" bob", "may not start or end with a space"),
        ("bob\u00a0", "may not start or end with a space"),
        ("\u3000", "may not start or end with a space"),
    ],
)
def test_ids_that_indexing_would_change_are_refused(field: str, value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=f"{field} {message}"):
        add_memory(text="a secret", scope=_scope(field, value), actor=USER)
    with pytest.raises(InvalidInput, match=f"{field} {message}"):
        _filter(field, value)
    assert counts_by_type(user_id=None) == {}, "nothing was stored"


def test_working_memory_and_the_queue_refuse_them_too() -> None:
    with pytest.raises(InvalidInput, match="user_id may not contain a comma"):
        working.ensure_session(session_id="s1", user_id="alice,mallory")
    with pytest.raises(InvalidInput, match="session_id may not start or end"):
        working.ensure_session(session_id="s1 ", user_id="alice")
    with pytest.raises(InvalidInput, match="agent_id may not contain a comma"):
        working.ensure_session(session_id="s1", user_id="alice", agent_id="a,b")
    message = [TurnMessage("user", "I live in Porto", 1.0, "t1")]
    for kwargs, name in [
        ({"user_id": "bob "}, "user_id"),
        ({"session_id": "s,1"}, "session_id"),
        ({"agent_id": " engram"}, "agent_id"),
        ({"namespace": "default,other"}, "namespace"),
    ]:
        args: dict[str, Any] = {"user_id": "alice", "session_id": "s1", **kwargs}
        with pytest.raises(InvalidInput, match=name):
            enqueue_turn(turn_id="t1", messages=message, **args)
    with pytest.raises(InvalidInput, match="user_id may not contain a comma"):
        counts_by_type(user_id="alice,mallory")
    # A lookup by a malformed session id is simply a session that does not exist.
    assert working.get_session(session_id="a,b") is None


def test_the_chats_own_ids_and_the_defaults_are_valid_scope_ids() -> None:
    for value in [account_memory_id(7), anonymous_memory_id("3fa2" * 6), "engram", "default"]:
        assert validate_scope_id(value, name="id") == value


# --- No cross-scope result ----------------------------------------------------------------------


@pytest.mark.parametrize("field", SCOPE_FIELDS)
def test_no_memory_is_found_under_another_id_with_the_real_index(field: str) -> None:
    stored: dict[str, Memory] = {}
    for value in sorted({v for pair in CONFUSABLE for v in pair}):
        memory = _store(field, value, f"secret diary entry of [{value}]")
        if memory is not None:
            stored[value] = memory
    # Case is kept (the scope fields are CASESENSITIVE): these are three different ids.
    assert {"Alice", "ALICE", "alice", "bob", "mallory"} <= set(stored)
    for value in stored:
        found = _found(field, value)
        assert [_value(m, field) for m in found] == [value], (field, value)
        for mode in ("hybrid", "keyword"):
            result = search_memories(
                filter=_filter(field, value), text="secret diary entry", mode=mode, threshold=0, top_k=50
            )
            assert [_value(h.memory, field) for h in result.hits] == [value], (field, value, mode)
    if field == "user_id":
        for value in stored:
            assert counts_by_type(user_id=value) == {"semantic": 1}


# --- Property: any two distinct accepted ids never see each other's memories ---------------------

_TRICKY = st.sampled_from(
    [",", " ", "\u00a0", "\u3000", "\u2028", "|", "{", "}", "\\", "-", "@", "*", ":", "'", '"', "(", ")",
     "A", "a", "É", "é", "ß", "SS", "K", "\u212a", "İ", "\u0131", "i\u0307", "ǅ", "ﬁ", "\u0661", "🙂"]
)  # fmt: skip
# Control characters are refused by validate_id (tested elsewhere); everything else may appear.
_PIECE = st.one_of(_TRICKY, st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=3))
_RAW_IDS = st.lists(_PIECE, min_size=1, max_size=6).map("".join)
# Mostly ids that are accepted (commas and edge spaces taken out), so most pairs test the index.
_IDS = _RAW_IDS.map(lambda s: s.replace(",", "").strip()[:40]).filter(bool)
_DERIVE = {
    "other": None,
    "upper": str.upper,
    "lower": str.lower,
    "swapcase": str.swapcase,
    "casefold": str.casefold,
    "nfkc": lambda s: unicodedata.normalize("NFKC", s),
    "trailing space": lambda s: s + " ",
    "leading space": lambda s: " " + s,
    "comma part": lambda s: s + ",x",
    "inner space": lambda s: s[:1] + " " + s[1:],
}


@st.composite
def _id_pairs(draw: st.DrawFn) -> tuple[str, str]:
    first = draw(_IDS)
    # Unrelated ids and case/normal-form twins most often: the pairs where both ids are accepted.
    how = draw(st.sampled_from(["other", "other", "other", "other", *sorted(set(_DERIVE) - {"other"})]))
    derive = _DERIVE[how]
    second = draw(st.one_of(_IDS, _RAW_IDS)) if derive is None else derive(first)
    event(how)
    return (first, second) if draw(st.booleans()) else (second, first)


_counter = itertools.count()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(SCOPE_FIELDS), pair=_id_pairs())
def test_a_memory_stored_under_one_accepted_id_is_never_returned_for_another(
    field: str, pair: tuple[str, str]
) -> None:
    # One fixed vector: embedding 100 hostile strings would only slow the search for a leak down.
    vector = np.ones(get_embedder().dims, dtype=np.float32)
    first, second = pair
    stored = {}
    for value in dict.fromkeys(pair):
        memory = _store(field, value, f"note {next(_counter)}", vector)
        assert (memory is not None) == _accepted(value), value
        if memory is not None:
            stored[value] = memory
    event("both accepted" if len(stored) == 2 else "refused or equal")
    # Memories of earlier examples stay in Redis: a filter must only ever return its exact id.
    for value, memory in stored.items():
        found = _found(field, value)
        assert {_value(m, field) for m in found} == {value}, (field, value, [_value(m, field) for m in found])
        assert memory.id in {m.id for m in found}
    if first != second and second in stored and first in stored:
        assert stored[first].id not in {m.id for m in _found(field, second)}
