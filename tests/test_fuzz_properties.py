"""Property-based tests (Hypothesis) of the inputs users and clients control: search text and
filters, memory text, the inspector's query strings and the chat socket's frames.

Each property says what must hold for any input: a clear refusal (InvalidInput, a 4xx, an error
frame) or a correct result, never a crash, and the Redis server (whose search module can segfault
on some query shapes) still answers afterwards. Examples are bounded so the suite stays fast.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory.query import InvalidInput, MemoryFilter
from memory.search import search_memories
from memory.selectors import get_memory
from memory.services import add_memory
from memory.types import Scope
from tests.chat_helpers import anonymous_cookie, anonymous_memory_id, communicator, open_session
from tests.memory_helpers import USER

BOUNDED = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Words and operators of RediSearch's query language, stop words among them: the shapes that
# have crashed the server are made of exactly these.
QUERY_WORDS = st.sampled_from(
    [
        "is",
        "it",
        "a",
        "the",
        "nate",
        "|",
        "-",
        "@text:",
        "(",
        ")",
        "{",
        "}",
        "*",
        "%",
        "~",
        '"',
        ":",
        "$v",
        "=>",
        "[KNN",
        "]",
        "@user_id:{x}",
        "porto",
        "lives",
        "\\",
        ";",
        "'",
        "\x00",
        "\ud83d",
        "🙂",
    ]
)
# Any code point, lone surrogates included (a JSON frame can carry "\ud83d"; st.text() leaves them out).
ANY_TEXT = st.text(
    st.one_of(st.characters(), st.sampled_from(["\ud83d", "\udc00", "\x00", "\u202e"])), max_size=200
)
SEARCH_TEXT = st.one_of(ANY_TEXT, st.lists(QUERY_WORDS, max_size=12).map(" ".join))


def _seed(user_id: str = "fuzz-user") -> None:
    for text in ("User lives in Porto", "User is allergic to peanuts", "User's dog is called Rex"):
        add_memory(text=text, scope=Scope(user_id=user_id), actor=USER)


@BOUNDED
@given(text=SEARCH_TEXT, mode=st.sampled_from(["hybrid", "vector", "keyword"]))
def test_any_search_text_gives_results_or_a_clear_error_and_redis_stays_up(redis_client, text, mode):
    if not redis_client.exists("fuzz-seeded"):
        _seed()
        redis_client.set("fuzz-seeded", "1")
    try:
        result = search_memories(filter=MemoryFilter.build(user_id="fuzz-user"), text=text, mode=mode)
    except InvalidInput as exc:
        assert str(exc)
    else:
        assert all(hit.memory.scope.user_id == "fuzz-user" for hit in result.hits)
        assert all(math.isfinite(hit.score.final) for hit in result.hits)
    assert redis_client.ping()


FILTER_VALUE = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.lists(st.text(max_size=12), max_size=4),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.booleans(),
)


@BOUNDED
@given(
    topics=FILTER_VALUE,
    types=FILTER_VALUE,
    created_after=FILTER_VALUE,
    event_before=FILTER_VALUE,
    session_id=FILTER_VALUE,
)
def test_any_filter_is_refused_clearly_or_searches_only_its_scope(
    redis_client, topics, types, created_after, event_before, session_id
):
    if not redis_client.exists("fuzz-seeded"):
        _seed()
        _seed("other-user")
        redis_client.set("fuzz-seeded", "1")
    try:
        filter_ = MemoryFilter.build(
            user_id="fuzz-user",
            topics=topics,
            types=types,
            created_after=created_after,
            event_before=event_before,
            session_id=session_id,
        )
        result = search_memories(filter=filter_, text="where does the user live")
    except InvalidInput as exc:
        assert str(exc)
    else:
        assert all(hit.memory.scope.user_id == "fuzz-user" for hit in result.hits)
    assert redis_client.ping()


@BOUNDED
@given(text=st.one_of(ANY_TEXT, st.lists(QUERY_WORDS, min_size=1, max_size=12).map(" ".join)))
def test_memory_text_is_stored_as_readable_text_or_refused(redis_client, text):
    try:
        memory = add_memory(text=text, scope=Scope(user_id="fuzz-writer"), actor=USER)
    except InvalidInput as exc:
        assert str(exc)
        return
    stored = get_memory(memory_id=memory.id)
    assert stored is not None
    # Whatever was kept encodes as UTF-8 (renderable on every page) and is not empty.
    stored.text.encode("utf-8")
    assert stored.text.strip()


QUERY_PARAM = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e309", "-1", "0", "99999999999999999999", "\x00"]),
)


@pytest.mark.django_db
@BOUNDED
@given(
    params=st.dictionaries(
        st.sampled_from(["q", "mode", "type", "topic", "pinned", "sort", "page"]), QUERY_PARAM
    )
)
def test_any_inspector_query_string_answers_below_500(client, django_user_model, redis_client, params):
    staff = django_user_model.objects.filter(username="fuzz-staff").first()
    if staff is None:
        staff = django_user_model.objects.create_superuser("fuzz-staff", password=None)
        add_memory(text="User lives in Porto", scope=Scope(user_id="fuzz-user"), actor=USER)
    client.force_login(staff)
    response = client.get("/inspector/users/fuzz-user/", params)
    assert response.status_code < 500, params
    assert redis_client.ping()


JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FRAME = st.one_of(
    JSON_VALUE.map(lambda v: json.dumps(v)),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["message", "ping", "MESSAGE", ""]),
            "text": JSON_VALUE,
            "client_id": JSON_VALUE,
        }
    ).map(json.dumps),
    st.text(min_size=1, max_size=80),  # the test communicator cannot send an empty frame
    st.sampled_from([10, 900, 3_000, 30_000]).map(lambda depth: "[" * depth + "]" * depth),
)


@pytest.mark.django_db(transaction=True)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(FRAME, min_size=1, max_size=8))
def test_any_frame_gets_an_answer_and_the_socket_stays_open(redis_client, frames):
    async_to_sync(_send_frames)(frames)


async def _send_frames(frames: list[str]) -> None:
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(anonymous_cookie)("fuzzer")
    session_id = await sync_to_async(open_session)(anonymous_memory_id("fuzzer"), "s-fuzz")
    comm = communicator(session_id, cookie)
    connected, _ = await comm.connect()
    assert connected
    try:
        for raw in frames:
            await comm.send_to(text_data=raw)
            answer = await _answer(comm)
            assert answer["type"] in {"error", "pong", "done", "duplicate"}, (raw[:80], answer)
            if answer["type"] == "error":
                assert answer["message"], answer
        # Still open and serving: a ping is answered.
        await comm.send_json_to({"type": "ping"})
        assert (await _answer(comm))["type"] == "pong"
    finally:
        await comm.disconnect()


async def _answer(comm: Any) -> dict[str, Any]:
    while True:
        output = await comm.receive_output(timeout=20)
        assert output["type"] == "websocket.send", f"socket closed: {output}"
        frame = json.loads(output["text"])
        if frame["type"] in {"error", "pong", "done", "duplicate"}:
            return dict(frame)
