"""The scripted OpenAI-compatible server, driven through the real `openai` client and our providers."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import openai
import pytest

from core.embeddings import EmbeddingError, OpenAIEmbedder
from core.llm import LLMError, OpenAICompatibleLLM, StreamEvent
from devtools.llm_server import (
    DelayReply,
    EmbeddingReply,
    ErrorReply,
    LLMServer,
    RawReply,
    Reply,
    ToolCallReply,
    pseudo_vector,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def client(llm_server: LLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=llm_server.base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
def make_llm(llm_server: LLMServer) -> Iterator[Callable[..., OpenAICompatibleLLM]]:
    """The project's provider on the server. Its sync client is closed afterwards (async tests close
    the async one themselves, on their own loop), so no pooled socket outlives the test."""
    made: list[OpenAICompatibleLLM] = []

    def make(timeout: float = 5) -> OpenAICompatibleLLM:
        llm = OpenAICompatibleLLM(
            base_url=llm_server.base_url, api_key="x", model="m", timeout=timeout, max_retries=0
        )
        made.append(llm)
        return llm

    yield make
    for llm in made:
        llm._client.close()


def post(server: LLMServer, path: str, body: bytes) -> tuple[int, Any]:
    """A bare HTTP POST, for requests the openai client would never send."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


# --- The openai client against the server ------------------------------------------------------------


def test_plain_completion_returns_the_scripted_text_and_records_the_request(llm_server, client):
    llm_server.enqueue(Reply("Hello from the script."))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]

    response = client.chat.completions.create(model="gpt-test", messages=messages)

    assert response.choices[0].message.content == "Hello from the script."
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "gpt-test"
    assert response.object == "chat.completion"
    assert response.usage is not None
    assert response.usage.prompt_tokens == 4
    assert response.usage.completion_tokens == 4
    [request] = llm_server.chat_requests()
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.messages == messages
    assert request.model == "gpt-test"
    assert request.headers["authorization"] == "Bearer test"
    assert not request.stream
    assert llm_server.pending() == []


def test_streamed_completion_arrives_in_several_chunks_then_usage(llm_server, client):
    llm_server.enqueue(Reply("The quick brown fox jumps.", usage=(7, 5)))

    stream = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "go"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == ["The ", "quick ", "brown ", "fox ", "jumps."]
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-test" for c in chunks)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    # The usage chunk comes last and has no choices.
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 5)
    assert llm_server.last_chat_request().stream


def test_explicit_chunks_are_streamed_as_given_and_usage_only_on_request(llm_server, client):
    llm_server.enqueue(Reply(chunks=['{"a"', ": 1", "}"]))

    chunks = list(client.chat.completions.create(model="m", messages=[], stream=True))

    assert [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content] == ['{"a"', ": 1", "}"]
    assert all(c.usage is None for c in chunks)


def test_tool_call_parses_into_tool_calls(llm_server, client):
    llm_server.enqueue(
        ToolCallReply(calls=[("get_weather", {"city": "Paris"}), ("get_time", {}, "call_fixed")])
    )

    response = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL]
    )

    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("function", "get_weather", {"city": "Paris"}),
        ("function", "get_time", {}),
    ]
    assert calls[0].id.startswith("call_")
    assert calls[1].id == "call_fixed"
    assert llm_server.last_chat_request().tools == [WEATHER_TOOL]


def test_streamed_tool_call_splits_arguments_over_several_chunks(llm_server, client):
    arguments = {"city": "Rio de Janeiro", "unit": "celsius"}
    llm_server.enqueue(ToolCallReply(calls=[("get_weather", arguments), ("get_weather", {"city": "Oslo"})]))

    chunks = list(client.chat.completions.create(model="m", messages=[], tools=[WEATHER_TOOL], stream=True))

    fragments = [call for c in chunks for choice in c.choices for call in choice.delta.tool_calls or []]
    assert len([f for f in fragments if f.index == 0 and f.function and f.function.arguments]) >= 3
    # Reassemble as every streaming consumer does: by index, id/name once, arguments concatenated.
    assembled: dict[int, dict[str, str]] = {}
    for fragment in fragments:
        slot = assembled.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
        slot["id"] = fragment.id or slot["id"]
        if fragment.function:
            slot["name"] += fragment.function.name or ""
            slot["arguments"] += fragment.function.arguments or ""
    assert [(s["name"], json.loads(s["arguments"])) for _, s in sorted(assembled.items())] == [
        ("get_weather", arguments),
        ("get_weather", {"city": "Oslo"}),
    ]
    assert all(s["id"] for s in assembled.values())
    assert [f.type for f in fragments if f.id] == ["function", "function"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_embeddings_follow_input_order_with_the_configured_dims(llm_server, client):
    llm_server.dims = 16
    texts = ["alpha", "beta", "alpha"]

    response = client.embeddings.create(model="emb", input=texts)

    vectors = [row.embedding for row in sorted(response.data, key=lambda row: row.index)]
    assert [len(v) for v in vectors] == [16, 16, 16]
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    np.testing.assert_allclose(np.array(vectors[1]), np.array(pseudo_vector("beta", 16)), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.array(vectors), axis=1), 1.0, rtol=1e-5)
    assert response.model == "emb"
    [request] = llm_server.embedding_requests()
    assert request.json["input"] == texts
    # Same text, same vector, across requests too; a single string is one input.
    again = client.embeddings.create(model="emb", input="alpha", encoding_format="float")
    assert len(again.data) == 1
    np.testing.assert_allclose(again.data[0].embedding, vectors[0], rtol=1e-6)


def test_embeddings_can_be_scripted(llm_server, client):
    llm_server.fixed_vectors["pinned"] = [1.0, 0.0, 0.0]
    llm_server.enqueue_embeddings(EmbeddingReply(vectors=[[0.0, 1.0], [1.0, 0.0]]), DelayReply(0.01))

    scripted = client.embeddings.create(model="e", input=["a", "b"])
    pinned = client.embeddings.create(model="e", input=["pinned"])  # after a delay, the default answer
    sized = client.embeddings.create(model="e", input=["c"], dimensions=8)

    assert [row.embedding for row in scripted.data] == [[0.0, 1.0], [1.0, 0.0]]
    assert pinned.data[0].embedding == [1.0, 0.0, 0.0]
    assert len(sized.data[0].embedding) == 8


def test_error_reply_raises_the_matching_openai_error(llm_server, client):
    llm_server.enqueue(
        ErrorReply(status=500, message="the GPU melted"), ErrorReply(status=429, code="rate_limited")
    )

    with pytest.raises(openai.InternalServerError) as server_error:
        client.chat.completions.create(model="m", messages=[])
    with pytest.raises(openai.RateLimitError) as rate_error:
        client.chat.completions.create(model="m", messages=[])

    assert server_error.value.status_code == 500
    assert "the GPU melted" in str(server_error.value)
    assert server_error.value.body == {
        "message": "the GPU melted",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert rate_error.value.code == "rate_limited"


def test_client_retries_consume_the_queue(llm_server):
    llm_server.enqueue(ErrorReply(status=503, headers={"retry-after-ms": "1"}), Reply("second time lucky"))

    with openai.OpenAI(base_url=llm_server.base_url, api_key="k", max_retries=1) as client:
        response = client.chat.completions.create(model="m", messages=[])

    assert response.choices[0].message.content == "second time lucky"
    assert len(llm_server.chat_requests()) == 2


def test_empty_queue_answers_with_the_default_reply(llm_server, client):
    assert client.chat.completions.create(model="m", messages=[]).choices[0].message.content == "ok"
    llm_server.default_reply = Reply("fallback")
    assert client.chat.completions.create(model="m", messages=[]).choices[0].message.content == "fallback"


def test_a_responder_decides_from_the_request(llm_server, client):
    def echo(request: dict[str, Any]) -> Reply:
        return Reply("you said: " + request["messages"][-1]["content"])

    llm_server.enqueue(echo)
    llm_server.default_reply = lambda request: Reply(request["model"])

    first = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
    second = client.chat.completions.create(model="echo-me", messages=[])

    assert first.choices[0].message.content == "you said: ping"
    assert second.choices[0].message.content == "echo-me"


def test_response_format_is_recorded_and_the_scripted_text_returned(llm_server, client):
    llm_server.enqueue(Reply('{"facts": []}'))

    response = client.chat.completions.create(model="m", messages=[], response_format={"type": "json_object"})

    assert json.loads(response.choices[0].message.content or "") == {"facts": []}
    assert llm_server.last_chat_request().response_format == {"type": "json_object"}


def test_raw_reply_sends_junk(llm_server, client):
    llm_server.enqueue(
        RawReply(body="not json {", status=200),
        RawReply(b"data: {oops\n\n", content_type="text/event-stream"),
    )

    # openai 3.57 does not wrap an undecodable 200 body in one of its own errors.
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model="m", messages=[])
    with pytest.raises(json.JSONDecodeError):
        list(client.chat.completions.create(model="m", messages=[], stream=True))


def test_invalid_json_and_unknown_paths_get_openai_style_errors(llm_server):
    status, body = post(llm_server, "/v1/chat/completions", b"{not json")
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert llm_server.chat_requests()[0].body is None
    assert llm_server.chat_requests()[0].raw_body == b"{not json"

    status, body = post(llm_server, "/v1/nothing", b"{}")
    assert status == 404
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_models_are_listed(llm_server, client):
    assert [model.id for model in client.models.list()] == llm_server.models


def test_reset_forgets_script_and_records(llm_server, client):
    llm_server.enqueue(Reply("never sent"))
    client.models.list()

    llm_server.reset()

    assert llm_server.requests == []
    assert llm_server.pending() == []
    assert client.chat.completions.create(model="m", messages=[]).choices[0].message.content == "ok"


def test_wait_for_requests_sees_calls_made_in_the_background(llm_server, client):
    worker = threading.Thread(target=lambda: client.chat.completions.create(model="bg", messages=[]))
    worker.start()
    [request] = llm_server.wait_for_requests(1, path="/v1/chat/completions")
    worker.join()
    assert request.model == "bg"


def test_a_reply_for_the_wrong_endpoint_is_reported():
    with LLMServer() as server:
        server.enqueue(EmbeddingReply(vectors=[[1.0]]))
        with (
            openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
            pytest.raises(openai.InternalServerError, match="cannot answer a chat completion"),
        ):
            client.chat.completions.create(model="m", messages=[])
    assert server.errors == ["EmbeddingReply cannot answer a chat completion"]


# --- Lifecycle -------------------------------------------------------------------------------------------


def test_stop_closes_the_socket_and_joins_every_thread_even_with_open_connections():
    threads_before = set(threading.enumerate())
    server = LLMServer().start()
    port = server.port
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    client.chat.completions.create(model="m", messages=[])  # leaves a pooled keep-alive connection
    server.enqueue(DelayReply(30, then=Reply("too late")))
    failures: list[BaseException] = []

    def slow_call() -> None:
        try:
            client.chat.completions.create(model="m", messages=[])
        except openai.APIError as exc:
            failures.append(exc)

    slow = threading.Thread(target=slow_call)
    slow.start()
    server.wait_for_requests(2)

    started = time.monotonic()
    server.stop()

    assert time.monotonic() - started < 5  # the 30 s delay was cut short
    slow.join(timeout=5)
    assert len(failures) == 1  # the client saw the connection end without an answer
    client.close()
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    server.stop()  # idempotent


# --- The project's providers against the server ----------------------------------------------------------


def test_provider_complete_returns_text(llm_server, make_llm):
    llm_server.enqueue(Reply("plain answer"))

    completion = make_llm().complete([{"role": "user", "content": "q"}], json_mode=True)

    assert completion.text == "plain answer"
    assert completion.model == "m"
    assert completion.tool_calls == []
    assert completion.finish_reason == "stop"
    assert completion.usage.completion_tokens == 2
    assert llm_server.last_chat_request().response_format == {"type": "json_object"}


def test_provider_complete_returns_tool_calls(llm_server, make_llm):
    llm_server.enqueue(ToolCallReply(calls=[("get_weather", {"city": "Lima"}, "call_a")]))

    completion = make_llm().complete([{"role": "user", "content": "q"}], tools=[WEATHER_TOOL])

    assert completion.finish_reason == "tool_calls"
    assert [(c.id, c.name, json.loads(c.arguments)) for c in completion.tool_calls] == [
        ("call_a", "get_weather", {"city": "Lima"})
    ]


async def test_provider_stream_yields_text_then_one_done(llm_server, make_llm):
    llm_server.enqueue(Reply("streamed words arrive one by one", delay_between_chunks=0.01))

    llm = make_llm()
    events: list[StreamEvent] = [e async for e in llm.stream([{"role": "user", "content": "q"}])]
    await llm._async_client.close()

    assert [e.kind for e in events[:-1]] == ["text"] * 6
    assert "".join(e.text for e in events[:-1]) == "streamed words arrive one by one"
    done = events[-1]
    assert done.kind == "done"
    assert done.completion is not None
    assert done.completion.text == "streamed words arrive one by one"
    assert done.completion.usage.prompt_tokens == 1
    assert done.completion.usage.completion_tokens == 6
    assert llm_server.last_chat_request().json["stream_options"] == {"include_usage": True}


async def test_provider_stream_assembles_tool_calls(llm_server, make_llm):
    llm_server.enqueue(ToolCallReply(calls=[("get_weather", {"city": "Quito"})]))

    llm = make_llm()
    events = [e async for e in llm.stream([], tools=[WEATHER_TOOL])]
    await llm._async_client.close()

    [done] = events
    assert done.completion is not None
    [call] = done.completion.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Quito"})
    assert done.completion.finish_reason == "tool_calls"


def test_provider_timeout_raises_llm_error(llm_server, make_llm):
    llm_server.enqueue(DelayReply(2, then=Reply("too late")))

    started = time.monotonic()
    with pytest.raises(LLMError) as error:
        make_llm(timeout=0.5).complete([{"role": "user", "content": "q"}])

    assert error.value.kind == "timeout"
    assert error.value.retryable
    assert time.monotonic() - started < 1.9


async def test_provider_stream_times_out_between_chunks(llm_server, make_llm):
    llm_server.enqueue(Reply("first then silence", delay_between_chunks=2))
    llm = make_llm(timeout=0.5)
    received: list[str] = []

    with pytest.raises(LLMError) as error:
        async for event in llm.stream([{"role": "user", "content": "q"}]):
            received.append(event.text)
    await llm._async_client.close()

    assert error.value.kind == "timeout"
    assert received == []  # the opening chunk has empty content, so no text event came out


def test_provider_http_error(llm_server, make_llm):
    llm_server.enqueue(ErrorReply(status=503, message="overloaded"))

    with pytest.raises(LLMError, match="overloaded") as error:
        make_llm().complete([])

    assert (error.value.kind, error.value.status, error.value.retryable) == ("http", 503, True)


def test_openai_embedder_returns_normalised_vectors(llm_server):
    llm_server.dims = 32
    embedder = OpenAIEmbedder(model="x", base_url=llm_server.base_url, api_key="k", dims=0)

    vectors = embedder.embed(["one", "two", "one"])

    assert vectors.shape == (3, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert embedder.dims == 32  # probed through the endpoint, as the model is unknown
    embedder._client.close()


def test_openai_embedder_rejects_a_wrong_vector_count(llm_server):
    llm_server.enqueue_embeddings(EmbeddingReply(vectors=[[1.0, 0.0]]))
    embedder = OpenAIEmbedder(model="x", base_url=llm_server.base_url, api_key="k", dims=2)

    with pytest.raises(EmbeddingError, match="1 vectors for 2 texts"):
        embedder.embed(["a", "b"])
    embedder._client.close()


JUNK_200_BODIES = [
    RawReply("<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"),
    RawReply("[1, 2, 3]"),
    RawReply('"just a string"'),
    RawReply("null"),
    RawReply('{"choices": "none"}'),
    RawReply('{"choices": [{"message": "hello"}]}'),
    RawReply('{"choices": [{"message": {"content": "hi", "tool_calls": ["x"]}}]}'),
]


@pytest.mark.parametrize("junk", JUNK_200_BODIES, ids=lambda r: str(r.body)[:24])
def test_a_200_that_is_not_a_completion_is_a_clean_llm_error(llm_server, junk):
    llm = OpenAICompatibleLLM(base_url=llm_server.base_url, api_key="x", model="m", timeout=5, max_retries=0)
    llm_server.enqueue(junk)
    try:
        with pytest.raises(LLMError) as caught:
            llm.complete([{"role": "user", "content": "hi"}])
        assert caught.value.kind == "invalid" and not caught.value.retryable
        assert "not a model's answer" in str(caught.value)
    finally:
        llm.close()


@pytest.mark.parametrize(
    "junk",
    [
        RawReply("<html><body>Service unavailable</body></html>", content_type="text/html"),
        RawReply(b"data: [1]\n\n", content_type="text/event-stream"),
        RawReply(b'data: {"choices": [{"delta": "x"}]}\n\n', content_type="text/event-stream"),
    ],
    ids=["html", "list-event", "delta-not-object"],
)
async def test_a_stream_that_is_not_completion_chunks_is_a_clean_llm_error(llm_server, junk):
    llm = OpenAICompatibleLLM(base_url=llm_server.base_url, api_key="x", model="m", timeout=5, max_retries=0)
    llm_server.enqueue(junk)
    try:
        with pytest.raises(LLMError) as caught:
            async for _ in llm.stream([{"role": "user", "content": "hi"}]):
                pass
        assert caught.value.kind == "invalid"
    finally:
        llm.close()
        await llm._async_client.close()


async def test_provider_turns_junk_bodies_into_invalid_llm_errors(llm_server):
    llm = OpenAICompatibleLLM(base_url=llm_server.base_url, api_key="x", model="m", timeout=5, max_retries=0)
    llm_server.enqueue(
        RawReply(body="not json {", status=200),
        RawReply(b"data: {oops\n\n", content_type="text/event-stream"),
    )
    try:
        with pytest.raises(LLMError) as plain:
            llm.complete([{"role": "user", "content": "hi"}])
        assert plain.value.kind == "invalid" and not plain.value.retryable
        with pytest.raises(LLMError) as streamed:
            async for _ in llm.stream([{"role": "user", "content": "hi"}]):
                pass
        assert streamed.value.kind == "invalid"
    finally:
        llm.close()
        await llm._async_client.close()
