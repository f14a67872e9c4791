"""What each actor may change (memory/policy.py), and that every write path asks it: the chat
model's tools (through the socket and the scripted model, and run_tool directly), the extractor,
the user's own "Forget", staff."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from chat.tools import ToolContext, run_tool
from devtools.llm_server import Reply, ToolCallReply
from memory.policy import NOT_YOUR_DELETION, Change, may_change
from memory.selectors import deleted_memories, get_memory, memory_history
from memory.services import (
    add_memory,
    delete_memory,
    extend_ttl,
    restore_memory,
    restore_version,
    set_locked,
    set_pinned,
    set_ttl,
    update_memory,
)
from memory.types import Actor, ActorKind, Memory, MemoryLocked, Scope
from memory.worker import Worker
from tests.chat_helpers import communicator, frames_until, make_user, open_session, session_cookie_for_user
from tests.extraction_helpers import drain, facts, say
from tests.memory_helpers import ANYONE, EXTRACTOR, STAFF, USER

TOOL = Actor(ActorKind.TOOL, "forget", model="chat-model")
SYSTEM = Actor(ActorKind.SYSTEM, "retention")
LOCKED_REASON = "that memory is locked by support and was not changed"
PINNED_REASON = "that memory is pinned by support and was not changed"


def _memory(*, pinned: bool = False, locked: bool = False) -> Memory:
    return Memory(id="m", text="User lives in Porto", type="semantic", scope=Scope(user_id="u"),  # type: ignore[arg-type]
                  pinned=pinned, locked=locked)  # fmt: skip


# --- The table ----------------------------------------------------------------------------------

# Written out by hand (not derived from the policy's own table): what each actor may do to a
# plain, a pinned and a locked memory. "" = allowed, otherwise the start of the reason.
P, L = "pinned by support", "locked by support"
STAFF_ONLY = "only staff"
EXPECTED: dict[ActorKind, dict[Change, tuple[str, str, str]]] = {
    ActorKind.STAFF: {change: ("", "", "") for change in Change},
    ActorKind.SYSTEM: {change: ("", "", "") for change in Change},
    ActorKind.USER: {
        Change.UPDATE: ("", "", L),
        Change.DELETE: ("", "", ""),  # their data: a pin or a lock does not keep it from them
        Change.RESTORE: ("", "", L),
        Change.EXPIRY: ("", "", L),
        Change.PIN: (STAFF_ONLY,) * 3,
        Change.UNPIN: (STAFF_ONLY,) * 3,
        Change.LOCK: (STAFF_ONLY,) * 3,
        Change.UNLOCK: (STAFF_ONLY,) * 3,
    },
    **{
        kind: {
            Change.UPDATE: ("", P, L),
            Change.DELETE: ("", P, L),
            **{c: (STAFF_ONLY,) * 3 for c in Change if c not in {Change.UPDATE, Change.DELETE}},
        }
        for kind in (ActorKind.TOOL, ActorKind.EXTRACTOR)
    },
    # An app key (issue 16): the tool's rule, and it may also set the expiry or restore what it deleted.
    ActorKind.APP: {
        **{c: ("", P, L) for c in (Change.UPDATE, Change.DELETE, Change.EXPIRY, Change.RESTORE)},
        **{c: (STAFF_ONLY,) * 3 for c in (Change.PIN, Change.UNPIN, Change.LOCK, Change.UNLOCK)},
    },
}


@pytest.mark.parametrize("kind", list(ActorKind))
@pytest.mark.parametrize("change", list(Change))
def test_the_policy_table(kind: ActorKind, change: Change) -> None:
    actor = Actor(kind, "someone")
    states = (_memory(), _memory(pinned=True), _memory(locked=True))
    for memory, expected in zip(states, EXPECTED[kind][change], strict=True):
        # The table is about pins and locks: the memory was deleted by the one restoring it.
        decision = may_change(actor=actor, memory=memory, change=change, deleted_by=actor)
        assert decision.allowed == (expected == ""), (kind, change, memory.pinned, memory.locked)
        assert decision.reason.startswith(expected) or expected in decision.reason, decision.reason
        if not decision.allowed:
            with pytest.raises(MemoryLocked, match=decision.reason):
                decision.enforce()


def test_a_user_may_restore_only_what_they_deleted_themselves() -> None:
    memory = _memory()
    mine = Actor(ActorKind.USER, "someone")
    assert may_change(actor=mine, memory=memory, change=Change.RESTORE, deleted_by=mine).allowed
    for deleter in (
        None,
        Actor(ActorKind.STAFF, "support-1"),
        Actor(ActorKind.SYSTEM, "retention"),
        Actor(ActorKind.USER, "someone-else"),
        Actor(ActorKind.EXTRACTOR, "someone"),
    ):
        decision = may_change(actor=mine, memory=memory, change=Change.RESTORE, deleted_by=deleter)
        assert not decision.allowed and decision.reason == NOT_YOUR_DELETION, deleter
    # Staff restore whatever is in the trash, whoever deleted it.
    staff = Actor(ActorKind.STAFF, "support-2")
    assert may_change(actor=staff, memory=memory, change=Change.RESTORE, deleted_by=None).allowed


def test_an_app_key_may_restore_only_what_that_key_deleted() -> None:
    memory = _memory()
    app = Actor(ActorKind.APP, "api-key:one")
    assert may_change(actor=app, memory=memory, change=Change.RESTORE, deleted_by=app).allowed
    for deleter in (None, Actor(ActorKind.APP, "api-key:two"), Actor(ActorKind.USER, "api-key:one")):
        decision = may_change(actor=app, memory=memory, change=Change.RESTORE, deleted_by=deleter)
        assert not decision.allowed and decision.reason == NOT_YOUR_DELETION, deleter


def test_a_lock_wins_over_a_pin_in_the_reason() -> None:
    both = _memory(pinned=True, locked=True)
    assert may_change(actor=TOOL, memory=both, change=Change.DELETE).reason == LOCKED_REASON
    assert may_change(actor=USER, memory=both, change=Change.DELETE).allowed


# --- Every write path asks it -------------------------------------------------------------------

Write = Callable[[str, Actor], Any]
WRITES: dict[str, Write] = {
    "update": lambda mid, actor: update_memory(
        owner=ANYONE, memory_id=mid, text="User lives in Faro", actor=actor
    ),
    "restore_version": lambda mid, actor: restore_version(
        owner=ANYONE, memory_id=mid, version=1, actor=actor
    ),
    "delete": lambda mid, actor: delete_memory(owner=ANYONE, memory_id=mid, actor=actor),
    "pin": lambda mid, actor: set_pinned(owner=ANYONE, memory_id=mid, pinned=True, actor=actor),
    "lock": lambda mid, actor: set_locked(owner=ANYONE, memory_id=mid, locked=True, actor=actor),
    "set_ttl": lambda mid, actor: set_ttl(owner=ANYONE, memory_id=mid, ttl_seconds=3600, actor=actor),
    "extend_ttl": lambda mid, actor: extend_ttl(owner=ANYONE, memory_id=mid, seconds=60, actor=actor),
}


@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("actor", [TOOL, EXTRACTOR], ids=["tool", "extractor"])
def test_no_write_path_lets_the_model_or_the_extractor_change_a_locked_memory(
    write: str, actor: Actor
) -> None:
    memory = add_memory(text="User lives in Porto", scope=Scope(user_id="u"), actor=USER, ttl_seconds=7200)
    set_locked(owner=ANYONE, memory_id=memory.id, locked=True, actor=STAFF, reason="corrected by support")
    before = get_memory(owner=ANYONE, memory_id=memory.id)
    with pytest.raises(MemoryLocked):
        WRITES[write](memory.id, actor)
    after = get_memory(owner=ANYONE, memory_id=memory.id)
    assert (after.text, after.version, after.pinned, after.deleted) == (
        before.text,
        before.version,
        False,
        False,
    )
    assert [e.event for e in memory_history(memory_id=memory.id)] == ["added", "locked"]
    WRITES[write](memory.id, STAFF)  # staff locked it, staff may change it


def test_restoring_a_deleted_memory_asks_the_policy_too() -> None:
    memory = add_memory(text="User lives in Porto", scope=Scope(user_id="u"), actor=USER)
    delete_memory(owner=ANYONE, memory_id=memory.id, actor=STAFF)
    for actor in (TOOL, EXTRACTOR):
        with pytest.raises(MemoryLocked, match="only staff can restore"):
            restore_memory(owner=ANYONE, memory_id=memory.id, actor=actor)
    # What support deleted stays deleted for the user (issue 14): only their own deletes come back.
    with pytest.raises(MemoryLocked, match=NOT_YOUR_DELETION):
        restore_memory(owner=ANYONE, memory_id=memory.id, actor=USER)
    assert get_memory(owner=ANYONE, memory_id=memory.id).deleted
    assert restore_memory(owner=ANYONE, memory_id=memory.id, actor=STAFF).deleted is False
    delete_memory(owner=ANYONE, memory_id=memory.id, actor=USER)
    assert restore_memory(owner=ANYONE, memory_id=memory.id, actor=USER).deleted is False
    set_locked(owner=ANYONE, memory_id=memory.id, locked=True, actor=STAFF)
    delete_memory(owner=ANYONE, memory_id=memory.id, actor=USER)
    with pytest.raises(MemoryLocked, match="locked by support"):
        restore_memory(owner=ANYONE, memory_id=memory.id, actor=USER)
    assert restore_memory(owner=ANYONE, memory_id=memory.id, actor=SYSTEM).deleted is False


# --- The model's tools --------------------------------------------------------------------------


def _ctx(user_id: str = "user-1") -> ToolContext:
    return ToolContext(user_id=user_id, session_id="s1", model="chat-model")


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return run_tool(_ctx(), name=name, raw_arguments=json.dumps(arguments)).result


@pytest.fixture
def protected() -> dict[str, Memory]:
    scope = Scope(user_id="user-1")
    locked = add_memory(text="User's name is Alice", scope=scope, actor=USER)
    set_locked(owner=ANYONE, memory_id=locked.id, locked=True, actor=STAFF, reason="corrected by support")
    pinned = add_memory(text="User is allergic to penicillin", scope=scope, actor=USER)
    set_pinned(owner=ANYONE, memory_id=pinned.id, pinned=True, actor=STAFF, reason="medical")
    plain = add_memory(text="User likes jazz", scope=scope, actor=USER)
    return {"locked": locked, "pinned": pinned, "plain": plain}


def test_forget_leaves_locked_and_pinned_memories_and_says_why(protected: dict[str, Memory]) -> None:
    for name, reason in (("locked", LOCKED_REASON), ("pinned", PINNED_REASON)):
        memory = protected[name]
        result = _call("forget", memory_id=memory.id)
        assert result == {"not_changed": {"id": memory.id, "text": memory.text, "reason": reason}}
        assert not get_memory(owner=ANYONE, memory_id=memory.id).deleted
    assert _call("forget", memory_id=protected["plain"].id) == {
        "forgotten": {"id": protected["plain"].id, "text": "User likes jazz"}
    }


def test_remember_does_not_reword_a_protected_memory(protected: dict[str, Memory]) -> None:
    result = _call("remember", text="user's name is  ALICE")
    assert result == {"already_known": {"id": protected["locked"].id, "text": "User's name is Alice"}}
    result = _call("remember", text="The user is allergic to penicillin")
    assert result["not_changed"]["id"] == protected["pinned"].id
    assert result["not_changed"]["reason"] == PINNED_REASON
    assert "remembered" in _call("remember", text="User plays the cello")
    texts = sorted(m.text for m in facts("user-1"))
    assert texts == [
        "User is allergic to penicillin",
        "User likes jazz",
        "User plays the cello",
        "User's name is Alice",
    ]


@pytest.mark.django_db(transaction=True)
async def test_through_the_socket_the_model_is_told_the_memory_is_locked(
    product_llm: Any, settings: Any
) -> None:
    settings.CHAT_MODEL = "chat-model"
    user, memory_user = await sync_to_async(make_user)("alice")
    cookie = await sync_to_async(session_cookie_for_user)(user)
    memory = await sync_to_async(add_memory)(
        text="User lives in Porto", scope=Scope(user_id=memory_user), actor=USER
    )
    await sync_to_async(set_locked)(
        owner=ANYONE, memory_id=memory.id, locked=True, actor=STAFF, reason="corrected by support"
    )
    # Its own session id: the chat's per-process turn lock of a session is shared by every test.
    session_id = await sync_to_async(open_session)(memory_user, "s-policy")
    product_llm.enqueue(
        ToolCallReply(calls=[("forget", {"memory_id": memory.id})]), Reply("Support keeps that one.")
    )
    comm = communicator(session_id, cookie)
    connected, _ = await comm.connect()
    assert connected
    try:
        await comm.send_json_to({"type": "message", "text": "Forget where I live", "client_id": "c1"})
        frames = await frames_until(comm, "done")
    finally:
        await comm.disconnect()
    assert frames[-1]["text"] == "Support keeps that one.", "the turn finished normally"
    tool_message = next(m for m in product_llm.chat_requests()[-1].messages if m["role"] == "tool")
    assert json.loads(tool_message["content"]) == {
        "not_changed": {"id": memory.id, "text": "User lives in Porto", "reason": LOCKED_REASON}
    }
    kept = await sync_to_async(get_memory)(owner=ANYONE, memory_id=memory.id)
    assert not kept.deleted and kept.locked


# --- The extractor and the user -----------------------------------------------------------------


def test_the_extractor_does_not_overwrite_a_pinned_memory() -> None:
    say("alice", "s1", "I live in Porto.")
    drain(Worker(worker_id="w1"))
    [home] = facts("alice")
    set_pinned(owner=ANYONE, memory_id=home.id, pinned=True, actor=STAFF, reason="always relevant")
    say("alice", "s1", "I live in Lisbon now.")
    drain(Worker(worker_id="w1"))
    assert get_memory(owner=ANYONE, memory_id=home.id).text == "User lives in Porto"
    # The wanted change is kept in the history as refused, so support sees it.
    assert [e.event for e in memory_history(memory_id=home.id)] == ["added", "pinned", "change_refused"]


@pytest.mark.django_db
def test_the_user_can_forget_their_own_locked_and_pinned_memories(client: Client) -> None:
    user, memory_user = make_user("alice")
    client.force_login(user)
    memory = add_memory(text="User has diabetes", scope=Scope(user_id=memory_user), actor=USER)
    set_pinned(owner=ANYONE, memory_id=memory.id, pinned=True, actor=STAFF)
    set_locked(owner=ANYONE, memory_id=memory.id, locked=True, actor=STAFF)
    response = client.post(f"/chat/me/memories/{memory.id}/forget")
    assert response.status_code == 302
    assert [m.id for m in deleted_memories(user_id=memory_user)] == [memory.id]
    assert memory_history(memory_id=memory.id)[-1].actor.kind == ActorKind.USER


def test_a_summary_staff_locked_stays_and_extraction_goes_on(settings: Any, redis_client: Any) -> None:
    from memory import keys
    from memory.extraction import queue

    settings.EXTRACTION_STRATEGY = "summary"
    say("alice", "s1", "We talked about the trip to Rome in May.")
    drain(Worker(worker_id="w1"))
    summary_id = redis_client.get(keys.extraction("s1", "summary_id")).decode()
    set_locked(owner=ANYONE, memory_id=summary_id, locked=True, actor=STAFF, reason="corrected by support")
    locked_text = get_memory(owner=ANYONE, memory_id=summary_id).text
    say("alice", "s1", "Then we planned the flights to Lisbon in June.")
    drain(Worker(worker_id="w1"))
    assert get_memory(owner=ANYONE, memory_id=summary_id).text == locked_text
    assert queue.queue_health()["counters"].get("jobs_failed", 0) == 0
    newer = redis_client.get(keys.extraction("s1", "summary_id")).decode()
    assert newer != summary_id and "Lisbon" in get_memory(owner=ANYONE, memory_id=newer).text


def test_remember_may_not_contradict_a_locked_memory_either(product_llm: Any) -> None:
    # With a model, the tool's fact is judged as the extractor judges one (decide): the model says
    # "lives in Berlin" updates the locked "lives in Porto", so the tool refuses and says why.
    home = add_memory(text="User lives in Porto", scope=Scope(user_id="user-1"), actor=USER)
    set_locked(owner=ANYONE, memory_id=home.id, locked=True, actor=STAFF, reason="corrected by support")
    product_llm.enqueue(
        Reply(
            json.dumps(
                {"decisions": [{"fact": 0, "action": "UPDATE", "id": "m1", "text": "User lives in Berlin"}]}
            )
        )
    )
    result = _call("remember", text="User lives in Berlin")
    assert result == {"not_changed": {"id": home.id, "text": "User lives in Porto", "reason": LOCKED_REASON}}
    assert [m.text for m in facts("user-1")] == ["User lives in Porto"]
    refused = memory_history(memory_id=home.id)[-1]
    assert refused.event == "change_refused" and refused.actor.kind == ActorKind.TOOL
    # An unrelated fact is still remembered (no related memory: no judgement call needed).
    assert "remembered" in _call("remember", text="User plays the cello")
