"""The chat load bench's model: the scripted streaming server in a process of its own.

Its own process, because in the load generator's process its threads would fight 100 asyncio
clients for the GIL and stretch the chunk delays. It answers every chat completion with the same
streamed reply (`chunks` pieces, `chunk_delay` seconds apart) and records, per request, when it
arrived, when the first content chunk and when the last chunk had been written to the socket:
`devtools/llm_server.py` records only the arrival, so the end is taken by wrapping `chat_chunks`
(the handler asks the generator for the next chunk right after writing the previous one).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

from devtools import llm_server
from devtools.llm_server import LLMServer, Reply, ToolCallReply

START_TIMEOUT = 30.0


@dataclass(frozen=True)
class StreamTiming:
    """One streamed reply, in `time.time()` seconds (the same clock as the client and daphne)."""

    user_text: str  # the last user message of the request: how a turn finds its model call
    received_at: float
    first_content_at: float  # the first content chunk written
    ended_at: float  # the last chunk written ("data: [DONE]" follows at once)
    nominal_s: float  # what the scripted delays alone add up to


def _last_user_text(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


class _TimedServer(LLMServer):
    def __init__(self, *, reply: Reply) -> None:
        super().__init__(default_reply=reply)
        self.reply = reply
        self._stream_times: dict[str, tuple[float, float]] = {}
        self._times_lock = threading.Lock()

    def chat_chunks(self, reply: Reply | ToolCallReply, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        first = 0.0
        for index, chunk in enumerate(super().chat_chunks(reply, request)):
            yield chunk
            # Resumed: the handler has slept and written the chunk just yielded.
            if index == 1:
                first = time.time()
        ended = time.time()
        with self._times_lock:
            self._stream_times[_last_user_text(request)] = (first, ended)

    def timings(self) -> list[StreamTiming]:
        with self._times_lock:
            times = dict(self._stream_times)
        # role chunk + content chunks + finish chunk + usage chunk, a delay before all but the first
        gaps = len(self.reply.stream_pieces()) + 2
        nominal = self.reply.delay + gaps * self.reply.delay_between_chunks
        out = []
        for request in self.chat_requests():
            text = _last_user_text(request.json)
            if text in times:
                first, ended = times[text]
                out.append(StreamTiming(text, request.received_at, first, ended, nominal))
        return out


def reply_for(chunks: int, chunk_delay: float) -> Reply:
    words = [f"word{n} " for n in range(chunks - 1)] + ["end."]
    return Reply(chunks=words, delay_between_chunks=chunk_delay)


def _serve(conn: Connection, chunks: int, chunk_delay: float) -> None:
    """The child process: serve until told to stop; answer "timings" requests meanwhile."""
    # Real model servers set TCP_NODELAY; with Nagle the scripted server's small writes wait for
    # delayed ACKs (~40 ms each, measured).
    llm_server._Handler.disable_nagle_algorithm = True
    server = _TimedServer(reply=reply_for(chunks, chunk_delay))
    server.start()
    try:
        conn.send(server.base_url)
        while True:
            message = conn.recv()
            if message == "timings":
                conn.send([asdict(t) for t in server.timings()])
            elif message == "errors":
                conn.send(list(server.errors))
            else:
                break
    finally:
        server.stop()


class StreamingModel:
    """Start with `start()` (returns the base URL), always `stop()`."""

    def __init__(self, *, chunks: int, chunk_delay: float) -> None:
        self.chunks = chunks
        self.chunk_delay = chunk_delay
        context = multiprocessing.get_context("spawn")  # no fork of a process holding Redis clients
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, chunks, chunk_delay), name="bench-llm", daemon=True
        )

    @property
    def pid(self) -> int:
        return self._process.pid or 0

    def start(self) -> str:
        self._process.start()
        if not self._conn.poll(START_TIMEOUT):
            self.stop()
            raise RuntimeError("the scripted model process did not start")
        return str(self._conn.recv())

    def _ask(self, what: str) -> Any:
        self._conn.send(what)
        if not self._conn.poll(START_TIMEOUT):
            raise RuntimeError(f"the scripted model process did not answer {what!r}")
        return self._conn.recv()

    def timings(self) -> list[StreamTiming]:
        return [StreamTiming(**row) for row in self._ask("timings")]

    def errors(self) -> list[str]:
        return list(self._ask("errors"))

    def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):  # the child is already gone
                self._conn.send("stop")
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
