"""A scripted OpenAI-compatible HTTP server for the tests and the benchmarks.

Tests talk to it through the real `openai` client, so the whole wire path (HTTP, JSON, SSE, the
client's parsing and error mapping) is exercised, while the test decides every answer:

    server.enqueue(Reply("Hello there"), ToolCallReply(calls=[("remember", {"fact": "x"})]))
    ... code under test calls server.base_url ...
    assert server.chat_requests()[0].messages[-1]["content"] == "hi"

Chat completions are answered from a FIFO queue of scripted replies (`server.default_reply` when
it is empty); embeddings from their own queue, else deterministic pseudo-random unit vectors
derived from a hash of each text. Every request is recorded.

Only the standard library is used: `ThreadingHTTPServer` on 127.0.0.1, port 0, in a thread.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeAlias, cast

__all__ = [
    "DelayReply",
    "EmbeddingReply",
    "ErrorReply",
    "LLMServer",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Script",
    "ToolCallReply",
    "pseudo_vector",
]

DEFAULT_DIMS = 384


# --- What a test can script ------------------------------------------------------------------------


@dataclass
class Reply:
    """A text answer. Streamed, it is sent word by word unless `chunks` says otherwise."""

    text: str = ""
    chunks: list[str] | None = None
    finish_reason: str = "stop"
    model: str | None = None  # None echoes the request's model, as real servers do
    usage: tuple[int, int] | None = None  # (prompt, completion) tokens; None estimates from words
    delay: float = 0.0  # seconds before the answer starts
    delay_between_chunks: float = 0.0  # seconds between streamed chunks

    def __post_init__(self) -> None:
        if self.chunks is not None:
            joined = "".join(self.chunks)
            if self.text and self.text != joined:
                raise ValueError("Reply: text and chunks disagree; give one of them")
            self.text = joined

    def stream_pieces(self) -> list[str]:
        return list(self.chunks) if self.chunks is not None else split_words(self.text)


ToolCallSpec: TypeAlias = tuple[str, dict[str, Any] | str] | tuple[str, dict[str, Any] | str, str]


@dataclass
class ToolCallReply:
    """The model calls tools. Each call is `(name, arguments)` or `(name, arguments, call_id)`.

    Dict arguments are sent as JSON text; a string is sent verbatim (to script malformed JSON).
    Missing ids become `call_1`, `call_2`, ... counted over the server's lifetime.
    """

    calls: list[ToolCallSpec]
    text: str = ""  # content alongside the calls; usually empty, as with OpenAI
    finish_reason: str = "tool_calls"
    model: str | None = None
    usage: tuple[int, int] | None = None
    argument_chunks: int = 3  # streamed arguments are split over this many chunks
    delay: float = 0.0
    delay_between_chunks: float = 0.0


@dataclass
class ErrorReply:
    """An OpenAI-style error: `{"error": {"message", "type", "param", "code"}}` with `status`."""

    status: int = 500
    message: str = "scripted error"
    type: str | None = None  # None picks the type OpenAI uses for `status`
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # e.g. {"retry-after": "0"}
    delay: float = 0.0


@dataclass
class RawReply:
    """Exactly these bytes, for junk or hand-written answers (also for streamed requests)."""

    body: str | bytes = ""
    status: int = 200
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class EmbeddingReply:
    """Exactly these vectors (for the embeddings queue). A count unlike the inputs' is sent as is."""

    vectors: list[list[float]]
    model: str | None = None
    delay: float = 0.0


@dataclass
class DelayReply:
    """Wait `seconds`, then answer with `then` (the default answer when None). Simulates timeouts."""

    seconds: float
    then: Script | None = None


Outcome: TypeAlias = Reply | ToolCallReply | ErrorReply | RawReply | EmbeddingReply | DelayReply
# A responder sees the parsed request body and decides the answer then, for dynamic cases.
Responder: TypeAlias = Callable[[dict[str, Any]], Outcome]
Script: TypeAlias = Outcome | Responder
_Final: TypeAlias = Reply | ToolCallReply | ErrorReply | RawReply | EmbeddingReply


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received. Header names are lower-cased; `body` is the parsed JSON or None."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    received_at: float = field(default_factory=time.time)

    @property
    def json(self) -> dict[str, Any]:
        """The body as a JSON object (empty when it was not one), for terse assertions."""
        return self.body if isinstance(self.body, dict) else {}

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.json.get("messages") or [])

    @property
    def model(self) -> str | None:
        return self.json.get("model")

    @property
    def stream(self) -> bool:
        return bool(self.json.get("stream"))

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.json.get("tools") or [])

    @property
    def response_format(self) -> dict[str, Any] | None:
        return self.json.get("response_format")


# --- Pure helpers: text splitting, vectors, response bodies ----------------------------------------


def split_words(text: str) -> list[str]:
    """Split before each word, keeping whitespace, so the pieces concatenate back to `text`."""
    return [piece for piece in re.split(r"(?<=\s)(?=\S)", text) if piece]


def split_even(text: str, parts: int) -> list[str]:
    """At most `parts` pieces of near-equal length; short strings give fewer pieces."""
    if not text:
        return [""]
    size = max(1, math.ceil(len(text) / max(1, parts)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def pseudo_vector(text: str, dims: int = DEFAULT_DIMS) -> list[float]:
    """A unit vector that depends only on `text` and `dims`: equal texts embed equally."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")
    rng = random.Random(seed)
    # Gaussian components give directions spread evenly over the sphere, so unrelated texts are
    # nearly orthogonal, as with a real model.
    values = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _word_count(value: Any) -> int:
    """A crude, deterministic token estimate: whitespace-separated words in all strings."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(_word_count(v) for v in value.values())
    if isinstance(value, list):
        return sum(_word_count(v) for v in value)
    return 0


def _prompt_words(messages: Any) -> int:
    """Words in the messages' content (not in roles or names), as the prompt token estimate."""
    if not isinstance(messages, list):
        return 0
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
            content = [part.get("text") for part in content if isinstance(part, dict)]
        total += _word_count(content)
    return total


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(
    status: int, message: str, type_: str | None = None, code: str | None = None
) -> dict[str, Any]:
    error_type = type_ or _ERROR_TYPES.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


@dataclass(frozen=True)
class _ToolCall:
    id: str
    name: str
    arguments: str


# --- The server --------------------------------------------------------------------------------------


class LLMServer:
    """The scripted endpoint. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, *, dims: int = DEFAULT_DIMS, default_reply: Script | None = None) -> None:
        self.dims = dims  # size of hash vectors (a request's `dimensions` overrides it)
        self.default_reply: Script = default_reply if default_reply is not None else Reply("ok")
        self.fixed_vectors: dict[str, list[float]] = {}  # text -> vector, instead of the hash vector
        self.models: list[str] = ["scripted-model", "scripted-embedding"]
        # Failures of the scripting itself (a responder raising, a reply for the wrong endpoint);
        # the pytest fixture fails the test with them, as they are bugs in the test.
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        self._chat_queue: deque[Script] = deque()
        self._embedding_queue: deque[Script] = deque()
        self._requests: list[RecordedRequest] = []
        self._counter = 0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> LLMServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        # A short poll interval keeps stop() (and so every test's teardown) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="llm-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end open keep-alive connections and delays, join every thread, close."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a delay
        httpd.shutdown()
        thread.join()
        httpd.close_connections()  # handlers blocked reading the next request see EOF
        httpd.server_close()  # closes the listening socket and joins the handler threads
        self._httpd = self._thread = None

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LLMServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What to give the openai client as `base_url`."""
        return f"{self.url}/v1"

    # Scripting

    def enqueue(self, *replies: Script) -> None:
        """Answers for the next chat completions, first in first out."""
        with self._lock:
            self._chat_queue.extend(replies)

    def enqueue_embeddings(self, *replies: Script) -> None:
        """Answers for the next embedding requests; when none is left, hash vectors are sent."""
        with self._lock:
            self._embedding_queue.extend(replies)

    def pending(self) -> list[Script]:
        """Scripted chat replies not consumed yet."""
        with self._lock:
            return list(self._chat_queue)

    def reset(self) -> None:
        """Forget the scripts and the recorded requests (settings like `dims` stay)."""
        with self._lock:
            self._chat_queue.clear()
            self._embedding_queue.clear()
            self._requests.clear()
            self.errors.clear()

    def vector_for(self, text: str, dims: int | None = None) -> list[float]:
        """The vector the server sends for `text` when nothing is scripted."""
        if text in self.fixed_vectors:
            return list(self.fixed_vectors[text])
        return pseudo_vector(text, dims or self.dims)

    # Recorded requests

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first (a copy: safe while the server runs)."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    def embedding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/embeddings"]

    def last_chat_request(self) -> RecordedRequest:
        requests = self.chat_requests()
        if not requests:
            raise AssertionError("no chat completion request was received")
        return requests[-1]

    def wait_for_requests(
        self, count: int, *, path: str | None = None, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Block until `count` requests (to `path`, if given) arrived: for calls made in the background."""

        def matching() -> list[RecordedRequest]:
            return [r for r in self._requests if path is None or r.path == path]

        with self._recorded:
            if not self._recorded.wait_for(lambda: len(matching()) >= count, timeout=timeout):
                raise AssertionError(
                    f"expected {count} requests to {path or 'any path'}, got {len(matching())}"
                )
            return matching()

    # Used by the handler

    def _record(self, request: RecordedRequest) -> None:
        with self._recorded:
            self._requests.append(request)
            self._recorded.notify_all()

    def _next_script(self, embeddings: bool) -> Script | None:
        with self._lock:
            queue = self._embedding_queue if embeddings else self._chat_queue
            return queue.popleft() if queue else None

    def _next_id(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _report(self, problem: str) -> None:
        with self._lock:
            self.errors.append(problem)

    def _sleep(self, seconds: float) -> bool:
        """Wait, unless the server stops first. True when the caller should go on answering."""
        if seconds > 0:
            self._stopping.wait(seconds)
        return not self._stopping.is_set()

    def _fallback(self, embeddings: bool) -> Script:
        """The answer when nothing is scripted: `default_reply`, or hash vectors for embeddings."""
        if embeddings:
            return lambda request: EmbeddingReply(self.embedding_vectors(request))
        return self.default_reply

    def _resolve(self, script: Script, request: dict[str, Any], fallback: Script) -> _Final | None:
        """Call responders and serve delays until a concrete reply remains; None if stopped meanwhile."""
        while True:
            if isinstance(script, DelayReply):
                if not self._sleep(script.seconds):
                    return None
                script = script.then if script.then is not None else fallback
            elif isinstance(script, Reply | ToolCallReply | ErrorReply | RawReply | EmbeddingReply):
                return script
            else:
                script = script(request)

    # Response bodies

    def chat_completion(self, reply: Reply | ToolCallReply, request: dict[str, Any]) -> dict[str, Any]:
        calls = self._tool_calls(reply)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
        if calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in calls
            ]
        elif message["content"] is None:
            message["content"] = ""  # a text reply always has content, even an empty one
        return {
            **self._envelope(reply, request, "chat.completion"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
            ],
            "usage": self._chat_usage(reply, request, calls),
        }

    def chat_chunks(self, reply: Reply | ToolCallReply, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The `chat.completion.chunk` objects of a streamed answer, in order (without [DONE])."""
        envelope = self._envelope(reply, request, "chat.completion.chunk")
        calls = self._tool_calls(reply)

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            return {**envelope, "choices": [choice]}

        # OpenAI opens with the role and empty content.
        yield chunk({"role": "assistant", "content": ""})
        pieces = reply.stream_pieces() if isinstance(reply, Reply) else split_words(reply.text)
        for piece in pieces:
            yield chunk({"content": piece})
        for index, call in enumerate(calls):
            # The first fragment of a call carries its id, type and name; the rest only arguments.
            head = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            yield chunk({"tool_calls": [head]})
            parts = (
                split_even(call.arguments, reply.argument_chunks) if isinstance(reply, ToolCallReply) else []
            )
            for part in parts:
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        yield chunk({}, reply.finish_reason)
        if (request.get("stream_options") or {}).get("include_usage"):
            yield {**envelope, "choices": [], "usage": self._chat_usage(reply, request, calls)}

    def embeddings(
        self, vectors: Sequence[Sequence[float]], request: dict[str, Any], model: str | None
    ) -> dict[str, Any]:
        as_base64 = request.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": _base64_floats(v) if as_base64 else list(v)}
            for i, v in enumerate(vectors)
        ]
        tokens = _word_count(request.get("input"))
        return {
            "object": "list",
            "data": data,
            "model": model or request.get("model") or "scripted-embedding",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def embedding_vectors(self, request: dict[str, Any]) -> list[list[float]]:
        dims = request.get("dimensions") or self.dims
        return [self.vector_for(_input_key(item), int(dims)) for item in _inputs(request.get("input"))]

    def model_list(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "scripted"} for m in self.models],
        }

    def _envelope(self, reply: Reply | ToolCallReply, request: dict[str, Any], kind: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-scripted-{self._next_id()}",
            "object": kind,
            "created": int(time.time()),
            "model": reply.model or request.get("model") or "scripted-model",
            "system_fingerprint": "scripted",
        }

    def _tool_calls(self, reply: Reply | ToolCallReply) -> list[_ToolCall]:
        if not isinstance(reply, ToolCallReply):
            return []
        calls = []
        for spec in reply.calls:
            name, arguments = spec[0], spec[1]
            call_id = spec[2] if len(spec) == 3 else f"call_{self._next_id()}"
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            calls.append(_ToolCall(id=call_id, name=name, arguments=text))
        return calls

    def _chat_usage(
        self, reply: Reply | ToolCallReply, request: dict[str, Any], calls: list[_ToolCall]
    ) -> dict[str, int]:
        if reply.usage is not None:
            return _usage(*reply.usage)
        completion = _word_count(reply.text) + sum(_word_count(c.arguments) + 1 for c in calls)
        return _usage(_prompt_words(request.get("messages")), completion)


def _inputs(value: Any) -> list[Any]:
    """The embeddings `input`: a string, a list of strings, a token list, or a list of token lists."""
    if isinstance(value, list) and value and not all(isinstance(item, int) for item in value):
        return value
    return [value]


def _input_key(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item)


def _base64_floats(vector: Sequence[float]) -> str:
    # The openai client asks for base64 by default and decodes little-endian float32.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


# --- HTTP plumbing -------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so `stop()` can end keep-alive ones the client pool still holds."""

    daemon_threads = False  # joined by server_close(), so nothing outlives the fixture
    block_on_close = True

    def __init__(self, app: LLMServer) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a dropped client is normal here (timeouts),
        # anything else is a bug in this module that the test should see.
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):
            self.app._report(f"server error: {error!r}")


class _Handler(BaseHTTPRequestHandler):
    # Real model servers answer without Nagle's delay; with it each call waited ~40 ms for an ACK.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"  # keep-alive, like real endpoints; the client pools connections
    server_version = "ScriptedLLM/1.0"
    timeout = 60  # an abandoned keep-alive connection cannot pin a thread forever

    @property
    def app(self) -> LLMServer:
        return cast(_HTTPServer, self.server).app

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: one line per request on stderr would drown pytest's output."""

    def handle(self) -> None:
        # The client may hang up, e.g. when it timed out while we were delaying.
        with contextlib.suppress(ConnectionError):
            super().handle()

    # Routing

    def do_GET(self) -> None:
        self._record(b"", None)
        if self._route() == "/v1/models":
            self._send_json(200, self.app.model_list())
        else:
            self._send_error(404, f"no route for GET {self._route()}")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self._record(raw, body)
        route = self._route()
        if route not in ("/v1/chat/completions", "/v1/embeddings"):
            self._send_error(404, f"no route for POST {route}")
        elif not isinstance(body, dict):
            self._send_error(400, "We could not parse the JSON body of your request.")
        elif route == "/v1/chat/completions":
            self._answer_chat(body)
        else:
            self._answer_embeddings(body)

    def _route(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/")

    def _record(self, raw: bytes, body: Any) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.app._record(RecordedRequest(self.command, self._route(), headers, body, raw))

    # Endpoints

    def _answer_chat(self, request: dict[str, Any]) -> None:
        reply = self._scripted_reply(request, embeddings=False)
        if reply is None or self._answered_generically(reply):
            return
        if not isinstance(reply, Reply | ToolCallReply):
            self._script_mismatch(f"{type(reply).__name__} cannot answer a chat completion")
        elif request.get("stream"):
            self._stream(reply, request)
        else:
            self._send_json(200, self.app.chat_completion(reply, request))

    def _answer_embeddings(self, request: dict[str, Any]) -> None:
        reply = self._scripted_reply(request, embeddings=True)
        if reply is None or self._answered_generically(reply):
            return
        if isinstance(reply, EmbeddingReply):
            self._send_json(200, self.app.embeddings(reply.vectors, request, reply.model))
        else:
            self._script_mismatch(f"{type(reply).__name__} cannot answer an embeddings request")

    def _scripted_reply(self, request: dict[str, Any], *, embeddings: bool) -> _Final | None:
        """The next concrete reply, after its delay; None when stopping (the answer is dropped)."""
        fallback = self.app._fallback(embeddings)
        script = self.app._next_script(embeddings) or fallback
        try:
            reply = self.app._resolve(script, request, fallback)
        except Exception as exc:
            self._script_mismatch(f"the scripted responder raised {exc!r}")
            return None
        if reply is None or not self.app._sleep(reply.delay):
            self.close_connection = True
            return None
        return reply

    def _answered_generically(self, reply: _Final) -> bool:
        """Errors and raw bytes are answered the same way on every endpoint."""
        if isinstance(reply, ErrorReply):
            body = error_body(reply.status, reply.message, reply.type, reply.code)
            self._send_json(reply.status, body, reply.headers)
            return True
        if isinstance(reply, RawReply):
            data = reply.body.encode("utf-8") if isinstance(reply.body, str) else reply.body
            self._send_bytes(reply.status, data, reply.content_type)
            return True
        return False

    def _script_mismatch(self, problem: str) -> None:
        self.app._report(problem)
        self._send_error(500, f"scripted LLM server: {problem}")

    # Writing

    def _send_error(self, status: int, message: str) -> None:
        self._send_json(status, error_body(status, message))

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, reply: Reply | ToolCallReply, request: dict[str, Any]) -> None:
        """Server-sent events in HTTP/1.1 chunked encoding, so the connection can be reused."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, chunk in enumerate(self.app.chat_chunks(reply, request)):
            if index and not self.app._sleep(reply.delay_between_chunks):
                self.close_connection = True  # stopping: leave the stream unfinished
                return
            self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")  # the zero-length chunk ends the body

    def _write_chunk(self, data: bytes) -> None:
        # wfile is unbuffered, so each event leaves at once and the client sees real streaming.
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
