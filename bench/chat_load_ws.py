"""The chat load bench's WebSocket clients, on autobahn's asyncio client. Runs in the load
generator's child process only (see bench/chat_load_client.py): never import it next to Django.

autobahn is already installed (daphne depends on it; pinned in constraints.txt), so the bench
needs no new package. Its callbacks feed an asyncio queue; each client awaits frames from it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlparse

from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

from bench.chat_load_client import ClientPlan, ClientResult, LoadRun, TurnRecord

HANDSHAKE_TIMEOUT = 60.0


class ConnectionClosed(Exception):
    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"closed with code {code}: {reason or ''}")
        self.code = code


class _Protocol(WebSocketClientProtocol):
    factory: _Factory

    def onOpen(self) -> None:
        self.factory.connection._on_open(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.connection._inbox.put_nowait((time.time(), payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.connection._on_close(code, reason)


class _Factory(WebSocketClientFactory):
    protocol = _Protocol

    def __init__(self, connection: Connection, url: str, *, origin: str, cookie: str) -> None:
        super().__init__(url, origin=origin, headers={"Cookie": cookie}, loop=asyncio.get_running_loop())
        # On a saturated 2-core box a handshake can take seconds; the default would drop it.
        self.setProtocolOptions(openHandshakeTimeout=HANDSHAKE_TIMEOUT, closeHandshakeTimeout=5)
        self.connection = connection


class Connection:
    """One WebSocket: `await Connection.open(...)`, `send(frame)`, `await receive(timeout)`."""

    def __init__(self) -> None:
        self._inbox: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._protocol: _Protocol | None = None
        self.closed: ConnectionClosed | None = None

    @classmethod
    async def open(cls, url: str, *, origin: str, cookie: str) -> Connection:
        self = cls()
        parsed = urlparse(url)
        factory = _Factory(self, url, origin=origin, cookie=cookie)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
        await asyncio.get_running_loop().create_connection(factory, host, port)
        await asyncio.wait_for(self._opened, HANDSHAKE_TIMEOUT + 5)
        return self

    def _on_open(self, protocol: _Protocol) -> None:
        self._protocol = protocol
        if not self._opened.done():
            self._opened.set_result(None)

    def _on_close(self, code: int | None, reason: str | None) -> None:
        self.closed = ConnectionClosed(code, reason)
        if not self._opened.done():
            self._opened.set_exception(self.closed)
        self._inbox.put_nowait((time.time(), b""))  # wakes a waiting receive()

    def send(self, frame: dict[str, Any]) -> None:
        assert self._protocol is not None
        self._protocol.sendMessage(json.dumps(frame).encode(), isBinary=False)

    async def receive(self, wait_s: float) -> tuple[float, dict[str, Any]]:
        at, payload = await asyncio.wait_for(self._inbox.get(), wait_s)
        if not payload and self.closed is not None:
            raise self.closed
        return at, json.loads(payload)

    def close(self) -> None:
        if self._protocol is not None and self.closed is None:
            self._protocol.sendClose(code=1000)


async def _one_turn(conn: Connection, record: TurnRecord, frame_wait_s: float) -> None:
    record.sent_at = time.time()
    conn.send({"type": "message", "text": record.text, "client_id": f"c{record.client}-t{record.turn}"})
    while True:
        at, frame = await conn.receive(frame_wait_s)
        kind = frame.get("type")
        if kind == "turn_started":
            record.started_at, record.turn_id = at, str(frame.get("turn_id", ""))
        elif kind == "delta":
            record.first_delta_at = record.first_delta_at or at
            record.deltas += 1
        elif kind == "done":
            record.done_at = at
            return
        elif kind in {"error", "duplicate"}:
            record.error = f"{kind} frame: {frame.get('code', '')} {frame.get('message', '')}".strip()
            return
        # "tool" frames: the scripted model never calls tools; anything else is ignored too.


async def run_client(
    client: int, plan: ClientPlan, *, origin: str, barrier: asyncio.Barrier, frame_wait_s: float
) -> ClientResult:
    """Connect, meet every other client at `barrier`, then send the turns one after another (each
    after the previous `done`), so the load starts at once rather than as the handshakes finish."""
    result = ClientResult(client)
    began = time.perf_counter()
    try:
        conn = await Connection.open(plan.url, origin=origin, cookie=plan.cookie)
    except (OSError, ConnectionClosed, TimeoutError) as exc:
        result.connect_error = repr(exc)
        await barrier.wait()
        return result
    result.connect_ms = (time.perf_counter() - began) * 1000
    await barrier.wait()
    try:
        for n, text in enumerate(plan.texts):
            record = TurnRecord(client, n, text)
            result.turns.append(record)
            # After a timeout or a close the socket's state is unknown (late frames would be taken
            # for the next turn's): stop; the remaining turns count as not completed.
            try:
                await _one_turn(conn, record, frame_wait_s)
            except TimeoutError:
                record.error = f"no frame within {frame_wait_s:.0f}s"
                break
            except ConnectionClosed as exc:
                record.error = str(exc)
                break
    finally:
        conn.close()
    await asyncio.sleep(0.2)  # let the close handshakes go out before the loop ends
    return result


async def _drive(plans: list[ClientPlan], origin: str, frame_wait_s: float) -> list[ClientResult]:
    barrier = asyncio.Barrier(len(plans))
    runs = (
        run_client(i, plan, origin=origin, barrier=barrier, frame_wait_s=frame_wait_s)
        for i, plan in enumerate(plans)
    )
    return list(await asyncio.gather(*runs))


def child_main(plans: list[ClientPlan], origin: str, frame_wait_s: float) -> LoadRun:
    cpu_before = time.process_time()  # not counting the child's start-up imports
    results = asyncio.run(_drive(plans, origin, frame_wait_s))
    return LoadRun(results, time.process_time() - cpu_before)
