"""What the chat tells the user is true: a deleted chat is called deleted (not "your message is
saved"), and a change support locked is said to be refused (not "I'll remember this"), with the
refusal in the memory's history for support to see."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from devtools.llm_server import Reply
from memory import working
from memory.extraction.pipeline import apply_plan
from memory.extraction.types import Candidate, CandidateKind, ExtractionPlan, Op
from memory.query import MemoryFilter
from memory.selectors import get_memory, list_memories, memory_history
from memory.services import add_memory, set_locked
from memory.types import ActorKind, Scope
from memory.worker import Worker
from tests.chat_helpers import communicator, frames_until, make_user, open_session, session_cookie_for_user
from tests.extraction_helpers import drain, say
from tests.memory_helpers import ANYONE, STAFF

pytestmark = pytest.mark.django_db(transaction=True)


def _alice() -> tuple[str, str]:
    user, memory_user = make_user("alice")
    return session_cookie_for_user(user), memory_user


async def test_a_message_to_a_chat_deleted_in_another_tab_is_not_called_saved(product_llm: Any) -> None:
    cookie, memory_user = await sync_to_async(_alice)()
    session_id = await sync_to_async(open_session)(memory_user)
    comm = communicator(session_id, cookie)
    assert (await comm.connect())[0]
    try:
        await sync_to_async(working.delete_session)(session_id=session_id)  # the other tab
        await comm.send_json_to({"type": "message", "text": "hello?", "client_id": "c1"})
        frame = await comm.receive_json_from(timeout=10)
        assert (frame["type"], frame["code"]) == ("error", "chat_deleted")
        assert "deleted" in frame["message"] and "not saved" in frame["message"]
        assert "is saved" not in frame["message"]
        assert (await comm.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4404}
    finally:
        await comm.disconnect()
    assert await sync_to_async(working.get_session)(session_id=session_id) is None, "nothing recreated it"


async def test_a_chat_deleted_while_engram_answers_is_not_called_saved(product_llm: Any) -> None:
    product_llm.enqueue(Reply("a slow answer", delay=1.0))
    cookie, memory_user = await sync_to_async(_alice)()
    session_id = await sync_to_async(open_session)(memory_user)
    comm = communicator(session_id, cookie)
    assert (await comm.connect())[0]
    try:
        await comm.send_json_to({"type": "message", "text": "hello", "client_id": "c1"})
        assert (await comm.receive_json_from(timeout=10))["type"] == "turn_started"
        await sync_to_async(working.delete_session)(session_id=session_id)
        frames = await frames_until(comm, "error")
        assert frames[-1]["code"] == "chat_deleted", frames
        assert "deleted while Engram was answering" in frames[-1]["message"]
        assert "is saved" not in frames[-1]["message"]
    finally:
        await comm.disconnect()
    assert await sync_to_async(working.get_session)(session_id=session_id) is None


def _locked_home(user_id: str) -> str:
    say(user_id, "s-before", "I live in Lisbon.")
    drain(Worker(worker_id="w1"))
    [home] = list_memories(filter=MemoryFilter.build(user_id=user_id, types=["semantic"])).memories
    assert home.text == "User lives in Lisbon"
    set_locked(
        owner=ANYONE, memory_id=home.id, locked=True, actor=STAFF, reason="confirmed with the customer"
    )
    return home.id


def _memory_page(memory_id: str) -> str:
    """The inspector's memory page, as support sees it."""
    user = get_user_model().objects.create_user("vera", password="pw-vera-12345", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="memory", codename="view_memories")
    )
    client = Client()
    client.force_login(user)
    response = client.get(reverse("inspector:memory", kwargs={"memory_id": memory_id}))
    assert response.status_code == 200
    return response.content.decode()


async def test_a_change_support_locked_is_said_to_be_refused_and_recorded(settings: Any) -> None:
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    cookie, memory_user = await sync_to_async(_alice)()
    home_id = await sync_to_async(_locked_home)(memory_user)
    session_id = await sync_to_async(open_session)(memory_user)
    comm = communicator(session_id, cookie)
    assert (await comm.connect())[0]
    try:
        await comm.send_json_to({"type": "message", "text": "I live in Porto now.", "client_id": "c1"})
        reply = (await frames_until(comm, "done"))[-1]["text"]
    finally:
        await comm.disconnect()
    assert "I'll remember this" not in reply, reply
    assert "I can't save this, because support has locked what I know about it:\n• You live in Porto" in reply

    await sync_to_async(drain)(Worker(worker_id="w1"))
    home = await sync_to_async(get_memory)(owner=ANYONE, memory_id=home_id)
    assert home.text == "User lives in Lisbon" and home.version == 2, "locked: unchanged"
    refused = (await sync_to_async(memory_history)(memory_id=home_id))[-1]
    assert refused.event == "change_refused" and refused.version == 2
    assert refused.actor.kind == ActorKind.EXTRACTOR
    assert refused.details == {"action": "update", "proposed_text": "User lives in Porto"}
    assert refused.reason == "that memory is locked by support and was not changed"  # memory.policy
    html = await sync_to_async(_memory_page)(home_id)
    assert (
        "Change refused" in html
        and "Wanted to change it to “User lives in Porto”; nothing was changed." in html
    )


def test_a_memory_locked_after_the_plan_was_made_records_the_refusal_once(redis_client: Any) -> None:
    memory = add_memory(text="User lives in Lisbon", scope=Scope(user_id="alice"), actor=STAFF)
    candidate = Candidate(kind=CandidateKind.REMEMBER, text="User lives in Porto")
    plan = ExtractionPlan.from_dict(
        {
            "from_seq": 1,
            "to_seq": 1,
            "scope": {"user_id": "alice", "agent_id": "engram", "namespace": "default"},
            "extractor": {"model": "rules", "prompt_version": "rules-v2"},
            "source": ["t1"],
            "ops": [Op("update", candidate, target_id=memory.id, text="User lives in Porto").as_dict()],
        }
    )
    set_locked(owner=ANYONE, memory_id=memory.id, locked=True, actor=STAFF)
    for _ in range(2):  # a worker that takes the job over applies the same plan again
        outcomes = apply_plan(plan, session_id="s1", worker_id="w1")
        assert outcomes["refused"] == 1 and outcomes["update"] == 0, outcomes
    events = [e.event for e in memory_history(memory_id=memory.id)]
    assert events == ["added", "locked", "change_refused"]
    assert get_memory(owner=ANYONE, memory_id=memory.id).text == "User lives in Lisbon"
