"""Golden test: the exact messages one chat turn sends to the model (each message once)."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chat.turns import run_turn
from devtools.llm_server import ErrorReply, Reply
from memory import working
from memory.prompt import MEMORY_HEADER, SYSTEM_INSTRUCTIONS
from memory.services import add_memory
from memory.types import Scope
from tests.memory_helpers import USER

SESSION = "s-golden"
OWNER = "golden-user"


async def _turn(text: str, client_id: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []

    async def send(frame: dict[str, Any]) -> None:
        frames.append(frame)

    await run_turn(user_id=OWNER, session_id=SESSION, text=text, client_id=client_id, staff=False, send=send)
    return frames


@pytest.mark.django_db(transaction=True)
async def test_a_turn_sends_the_system_prompt_the_history_and_the_new_message_once(product_llm, settings):
    settings.CHAT_MODEL = "chat-model"
    await sync_to_async(add_memory)(text="User's dog is called Rex", scope=Scope(user_id=OWNER), actor=USER)
    await sync_to_async(working.ensure_session)(session_id=SESSION, user_id=OWNER)
    product_llm.enqueue(Reply("Hello there."), Reply("Your dog is called Rex."))

    await _turn("Hi, I am back", "c1")
    frames = await _turn("What is my dog called?", "c2")

    first, second = product_llm.chat_requests()
    assert [(m["role"], m["content"]) for m in first.messages[1:]] == [("user", "Hi, I am back")]
    system = f"{SYSTEM_INSTRUCTIONS}\n\n{MEMORY_HEADER}\n- [semantic] User's dog is called Rex"
    assert second.messages == [
        {"role": "system", "content": system},
        {"role": "user", "content": "Hi, I am back"},
        {"role": "assistant", "content": "Hello there."},
        {"role": "user", "content": "What is my dog called?"},
    ]
    done = frames[-1]
    trace = await sync_to_async(working.get_trace)(session_id=SESSION, turn_id=done["turn_id"])
    assert trace is not None
    # The new message is counted once, as the user message, not again among the recent ones.
    assert trace["tokens"]["recent_message_count"] == 2


@pytest.mark.django_db(transaction=True)
async def test_a_message_sent_again_after_the_model_failed_is_one_turn(product_llm, settings):
    settings.CHAT_MODEL = "chat-model"
    await sync_to_async(working.ensure_session)(session_id=SESSION, user_id=OWNER)
    product_llm.enqueue(ErrorReply(status=500), Reply("Here it is."))

    failed = await _turn("Tell me a joke", "c1")
    assert failed[-1]["type"] == "error" and "send it again" in failed[-1]["message"]
    again = await _turn("Tell me a joke", "c2")

    assert again[-1]["type"] == "done"
    retry = product_llm.chat_requests()[-1]
    assert [(m["role"], m["content"]) for m in retry.messages[1:]] == [("user", "Tell me a joke")]
    history = await sync_to_async(working.get_messages)(session_id=SESSION)
    assert [(m.role, m.content) for m in history] == [
        ("user", "Tell me a joke"),
        ("assistant", "Here it is."),
    ]


@pytest.mark.django_db(transaction=True)
async def test_the_same_words_after_an_answer_are_a_new_turn(product_llm, settings):
    settings.CHAT_MODEL = "chat-model"
    await sync_to_async(working.ensure_session)(session_id=SESSION, user_id=OWNER)
    product_llm.enqueue(Reply("First."), Reply("Second."))

    await _turn("yes", "c1")
    await _turn("yes", "c2")

    history = await sync_to_async(working.get_messages)(session_id=SESSION)
    assert [m.content for m in history] == ["yes", "First.", "yes", "Second."]
