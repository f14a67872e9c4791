"""The chat load bench's load generator: what it records, and the process it runs in.

The WebSocket clients (bench/chat_load_ws.py, on autobahn's asyncio client) run in a spawned
child process: Django's `daphne` app makes txaio pick Twisted in the bench process, after which
autobahn's asyncio flavour cannot be imported there. The child also keeps the clients' CPU use
apart from the bench process, and reports it.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClientPlan:
    url: str  # ws://127.0.0.1:PORT/ws/chat/<session>/
    cookie: str  # sessionid=...
    texts: list[str]  # the turns, sent one after another


@dataclass
class TurnRecord:
    """One turn as the client saw it; times are `time.time()` (daphne and the model use the same clock)."""

    client: int
    turn: int
    text: str  # unique: how the turn finds its model call and its retrieval trace
    sent_at: float = 0.0
    started_at: float = 0.0  # turn_started frame
    first_delta_at: float = 0.0
    done_at: float = 0.0
    deltas: int = 0
    turn_id: str = ""
    error: str = ""


@dataclass
class ClientResult:
    client: int
    connect_ms: float = 0.0
    connect_error: str = ""
    turns: list[TurnRecord] = field(default_factory=list)


@dataclass
class LoadRun:
    results: list[ClientResult]
    cpu_s: float  # the load generator's own CPU time (user + system)


def _in_child(plans: list[ClientPlan], origin: str, timeout: float) -> LoadRun:
    from bench.chat_load_ws import child_main  # autobahn's asyncio flavour: child process only

    return child_main(plans, origin, timeout)


def run_clients(plans: list[ClientPlan], *, origin: str, timeout: float) -> LoadRun:
    """Every client at once, in a child process; returns when all of them are done."""
    with multiprocessing.get_context("spawn").Pool(processes=1) as pool:
        return pool.apply(_in_child, (plans, origin, timeout))
