"""One turn at a time per chat across server processes: a Redis lock, renewed while the turn runs.

Two communicators stand for two daphne processes: nothing in-process is shared between their
turns (the old per-process lock table is replaced by one that never shares), so only Redis can
keep their turns apart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async

import chat.consumers
from core.embeddings import get_embedder
from devtools.llm_server import Reply
from memory import working
from tests.chat_helpers import communicator, make_user, open_session, session_cookie_for_user

pytestmark = pytest.mark.django_db(transaction=True)


class _NothingShared(dict[str, Any]):
    """A lock table as two processes have it: each turn finds no lock of the other."""

    def get(self, key: str, default: Any = None) -> Any:
        return default

    def __setitem__(self, key: str, value: Any) -> None:
        pass


@pytest.fixture
def two_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat.consumers, "_session_locks", _NothingShared(), raising=False)


def lock_key(session_id: str) -> str:
    from chat.turn_lock import lock_key

    return lock_key(session_id)


def _answer_slowly(body: dict[str, Any]) -> Reply:
    said = body["messages"][-1]["content"]
    # Longer than the lock's lease (1 s below): only renewal keeps the other turn out.
    return Reply(f"answer to {said}", chunks=["answer ", "to ", said], delay_between_chunks=0.8)


def _alice() -> tuple[str, str]:
    # Loaded now, the embedding model cannot hold up the event loop for a whole lease mid-turn.
    get_embedder().embed(["warm up"])
    user, memory_user = make_user("alice")
    return session_cookie_for_user(user), open_session(memory_user)


async def _done_frames(comm: Any, count: int) -> list[dict[str, Any]]:
    done: list[dict[str, Any]] = []
    while len(done) < count:
        frame = await comm.receive_json_from(timeout=30)
        if frame["type"] in ("done", "error"):
            done.append(frame)
    return done


async def test_two_processes_sending_at_once_never_interleave_a_chats_history(
    product_llm: Any, settings: Any, two_processes: None, redis_client: Any
) -> None:
    settings.CHAT_TURN_LOCK_SECONDS = 1
    product_llm.enqueue(_answer_slowly, _answer_slowly)
    cookie, session_id = await sync_to_async(_alice)()
    first, second = communicator(session_id, cookie), communicator(session_id, cookie)
    assert (await first.connect())[0] and (await second.connect())[0]
    try:
        await asyncio.gather(
            first.send_json_to({"type": "message", "text": "one", "client_id": "c1"}),
            second.send_json_to({"type": "message", "text": "two", "client_id": "c2"}),
        )
        done = await _done_frames(first, 2)
    finally:
        await first.disconnect()
        await second.disconnect()
    assert [f["type"] for f in done] == ["done", "done"]
    history = await sync_to_async(working.get_messages)(session_id=session_id)
    pairs = [(m.role, m.content) for m in history]
    assert pairs in (
        [("user", "one"), ("assistant", "answer to one"), ("user", "two"), ("assistant", "answer to two")],
        [("user", "two"), ("assistant", "answer to two"), ("user", "one"), ("assistant", "answer to one")],
    ), pairs
    assert history[0].meta["turn_id"] == history[1].meta["turn_id"] != history[2].meta["turn_id"]
    assert not redis_client.exists(lock_key(session_id)), "released after the turn"


async def test_a_turn_that_cannot_get_the_lock_in_time_is_not_saved_and_may_be_sent_again(
    product_llm: Any, settings: Any, redis_client: Any
) -> None:
    settings.CHAT_TURN_LOCK_SECONDS = 1
    settings.LLM_TIMEOUT_SECONDS = 1
    settings.CHAT_MAX_TOOL_ROUNDS = 0
    cookie, session_id = await sync_to_async(_alice)()
    # Another process holds the chat (its lease renewed, as a running turn's is).
    redis_client.set(lock_key(session_id), "someone-else", px=60_000)
    comm = communicator(session_id, cookie)
    assert (await comm.connect())[0]
    try:
        await comm.send_json_to({"type": "message", "text": "hello", "client_id": "c1"})
        frame = await comm.receive_json_from(timeout=10)
        assert (frame["type"], frame["code"], frame["client_id"]) == ("error", "busy", "c1")
        assert "was not saved" in frame["message"] and "send it again" in frame["message"]
        assert await sync_to_async(working.get_messages)(session_id=session_id) == []
        redis_client.delete(lock_key(session_id))
        await comm.send_json_to({"type": "message", "text": "hello", "client_id": "c1"})
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1]["type"] != "done":
            frames.append(await comm.receive_json_from(timeout=10))
        assert frames[0]["type"] == "turn_started", "the same message runs once the chat is free"
    finally:
        await comm.disconnect()
