"""The persona suite in one process: the chat's own turn function and the worker's own job function,
called directly (no sockets). Fast enough to iterate on the extractor; the reported numbers come
from the WebSocket transport (bench/persona_ws.py), which drives the same code through the server.

Each chat happens at its own time (time-machine moves the clock), so "next Friday" resolves as it
would have when it was said.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import time_machine

from bench.persona_data import Persona, Suite
from bench.persona_grading import PersonaOutcome

FAR_FUTURE = 10**10  # a `now` past every debounce and retry delay
# One event loop for every turn: the model client keeps its connections on the loop it first used.
_LOOP = asyncio.new_event_loop()


def _user_id(suite: Suite, persona: Persona) -> str:
    return f"persona-{suite.name}-{persona.id}"


async def _say(user_id: str, session_id: str, text: str, n: int, **tuning: Any) -> dict[str, Any]:
    """One turn; `tuning` (params=, shown_share_of_best=) goes to `run_turn` as it is."""
    from chat.turns import run_turn

    frames: list[dict[str, Any]] = []

    async def collect(frame: dict[str, Any]) -> None:
        frames.append(frame)

    await run_turn(
        user_id=user_id,
        session_id=session_id,
        text=text,
        client_id=f"c{n}",
        staff=False,
        send=collect,
        **tuning,
    )
    done = next((f for f in frames if f.get("type") == "done"), None)
    error = next((f for f in frames if f.get("type") == "error"), None)
    return done or {"type": "error", "text": "", "error": error}


def _extract_pending() -> None:
    from memory.extraction import queue
    from memory.extraction.pipeline import process_entries

    queue.ensure_group()
    while True:
        entries = queue.read_entries(consumer="persona-bench", block_ms=1, count=200)
        if not entries:
            return
        process_entries(entries, worker_id="persona-bench", now=FAR_FUTURE)


def _fact_memories(user_id: str) -> list[str]:
    from memory.query import MemoryFilter
    from memory.selectors import list_memories
    from memory.types import MemoryType

    facts = MemoryFilter.build(user_id=user_id, types=[str(t) for t in MemoryType if t != MemoryType.MESSAGE])
    return [m.text for m in list_memories(filter=facts, limit=500).memories]


def learn(suite: Suite, persona: Persona) -> list[str]:
    """Every chat of the persona at its own time, each followed by the worker's extraction; the
    errors of turns that failed."""
    from chat.services import start_session

    user_id = _user_id(suite, persona)
    errors: list[str] = []
    for number, chat in enumerate(persona.chats):
        with time_machine.travel(chat.at, tick=True):
            session = start_session(user_id=user_id)
            for n, text in enumerate(chat.messages):
                done = _LOOP.run_until_complete(_say(user_id, session.id, text, n))
                if done.get("type") != "done":
                    errors.append(f"{persona.id} chat {number} message {n}: {done.get('error')}")
        with time_machine.travel(chat.at + 600, tick=True):
            _extract_pending()
    return errors


def ask(
    suite: Suite, persona: Persona, *, answer_text: Callable[[dict[str, Any]], str], **tuning: Any
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """The persona's questions in one new chat, a day after its last one: (answers, broad answers,
    the user's fact memories). `tuning`: the search params and offline share the turns use
    (bench/tuning.py); none, the shipped ones."""
    from chat.services import start_session

    user_id = _user_id(suite, persona)
    answers: dict[str, str] = {}
    broad: dict[str, str] = {}
    with time_machine.travel(persona.asked_at, tick=True):
        session = start_session(user_id=user_id)
        questions = [q.text for f in persona.facts for q in f.questions]
        for n, text in enumerate([*questions, *persona.broad_questions]):
            done = _LOOP.run_until_complete(_say(user_id, session.id, text, n, **tuning))
            target = broad if text in persona.broad_questions else answers
            target[text] = answer_text(done)
        return answers, broad, _fact_memories(user_id)


def run_persona(
    suite: Suite, persona: Persona, *, answer_text: Callable[[dict[str, Any]], str]
) -> PersonaOutcome:
    errors = learn(suite, persona)
    answers, broad, fact_memories = ask(suite, persona, answer_text=answer_text)
    return PersonaOutcome(persona, fact_memories, answers, broad, errors)


def offline_answer(done: dict[str, Any]) -> str:
    """Offline, the user reads the reply itself."""
    return str(done.get("text", ""))


def run_suite(suite: Suite, *, progress: Callable[[str], None] = print) -> list[PersonaOutcome]:
    outcomes = []
    for persona in suite.personas:
        outcomes.append(run_persona(suite, persona, answer_text=offline_answer))
        progress(f"{suite.name} {persona.id} done")
    return outcomes
