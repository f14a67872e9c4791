"""Issue 15 item 5: every by-id engine call takes the owner's scope and refuses another user's memory
the way it refuses a missing id (MemoryNotFound), leaving that memory exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from chat.tools import ToolContext, run_tool
from inspector.permissions import staff_owner
from memory.access import Owner
from memory.extraction.decide import Op
from memory.extraction.pipeline import apply_plan
from memory.extraction.types import Candidate, CandidateKind, ExtractionPlan
from memory.selectors import get_memory, memory_history, memory_ttl
from memory.services import (
    add_memory,
    delete_memory,
    extend_ttl,
    record_refused_change,
    restore_memory,
    restore_version,
    set_locked,
    set_pinned,
    set_ttl,
    update_memory,
)
from memory.types import Actor, ActorKind, Memory, MemoryNotFound, Scope
from tests.memory_helpers import ANYONE, STAFF

ALICE = Owner.user("alice")
BOB = Actor(ActorKind.USER, "bob")
MISSING = "01JZZZZZZZZZZZZZZZZZZZZZZZ"

Call = Callable[[str, Owner], Any]
CALLS: dict[str, Call] = {
    "get_memory": lambda mid, owner: get_memory(memory_id=mid, owner=owner),
    "memory_ttl": lambda mid, owner: memory_ttl(memory_id=mid, owner=owner),
    "update_memory": lambda mid, owner: update_memory(memory_id=mid, owner=owner, text="x", actor=STAFF),
    "restore_version": lambda mid, owner: restore_version(memory_id=mid, owner=owner, version=1, actor=STAFF),
    "delete_memory": lambda mid, owner: delete_memory(memory_id=mid, owner=owner, actor=STAFF),
    "set_pinned": lambda mid, owner: set_pinned(memory_id=mid, owner=owner, pinned=True, actor=STAFF),
    "set_locked": lambda mid, owner: set_locked(memory_id=mid, owner=owner, locked=True, actor=STAFF),
    "set_ttl": lambda mid, owner: set_ttl(memory_id=mid, owner=owner, ttl_seconds=60, actor=STAFF),
    "extend_ttl": lambda mid, owner: extend_ttl(memory_id=mid, owner=owner, seconds=60, actor=STAFF),
    "record_refused_change": lambda mid, owner: record_refused_change(
        memory_id=mid, owner=owner, actor=STAFF, action="update", reason="r"
    ),
}


def _bobs_memory() -> Memory:
    memory = add_memory(text="Bob lives in Oslo", scope=Scope(user_id="bob"), actor=BOB, ttl_seconds=3600)
    # A second version, so restore_version has one to bring back.
    return update_memory(memory_id=memory.id, owner=Owner.user("bob"), text="Bob lives in Bergen", actor=BOB)


def _state(memory_id: str) -> tuple[Any, ...]:
    memory = get_memory(memory_id=memory_id, owner=ANYONE)
    events = [e.event for e in memory_history(memory_id=memory_id)]
    flags = (memory.deleted, memory.pinned, memory.locked, memory.ttl_seconds)
    return memory.text, memory.version, flags, events


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_by_id_call_refuses_another_users_memory_like_a_missing_one(redis_client: Any, name: str) -> None:
    bobs = _bobs_memory()
    before = _state(bobs.id)
    with pytest.raises(MemoryNotFound) as missing:
        CALLS[name](MISSING, ALICE)
    with pytest.raises(MemoryNotFound) as theirs:
        CALLS[name](bobs.id, ALICE)
    # The same words, with the id swapped: nothing says the memory exists.
    assert str(theirs.value).replace(bobs.id, MISSING) == str(missing.value)
    assert _state(bobs.id) == before
    CALLS[name](bobs.id, Owner.user("bob"))  # their owner may


def test_restore_refuses_another_users_deleted_memory(redis_client: Any) -> None:
    bobs = _bobs_memory()
    delete_memory(memory_id=bobs.id, owner=Owner.user("bob"), actor=BOB)
    before = _state(bobs.id)
    with pytest.raises(MemoryNotFound) as missing:
        restore_memory(memory_id=MISSING, owner=ALICE, actor=STAFF)
    with pytest.raises(MemoryNotFound) as theirs:
        restore_memory(memory_id=bobs.id, owner=ALICE, actor=STAFF)
    assert str(theirs.value).replace(bobs.id, MISSING) == str(missing.value)
    assert _state(bobs.id) == before
    with pytest.raises(MemoryNotFound):
        get_memory(memory_id=bobs.id, owner=ALICE, include_deleted=True)
    assert not restore_memory(memory_id=bobs.id, owner=Owner.user("bob"), actor=BOB).deleted


def test_the_forget_tool_answers_the_same_for_another_users_id_and_a_missing_one(redis_client: Any) -> None:
    bobs = _bobs_memory()
    ctx = ToolContext(user_id="alice", session_id="s1", model="chat-model")
    theirs = run_tool(ctx, name="forget", raw_arguments=f'{{"memory_id": "{bobs.id}"}}')
    missing = run_tool(ctx, name="forget", raw_arguments=f'{{"memory_id": "{MISSING}"}}')
    assert theirs.result == missing.result == {"error": "no such memory"}
    assert not get_memory(memory_id=bobs.id, owner=ANYONE).deleted


def test_an_extraction_plan_changes_only_its_own_users_memories(redis_client: Any) -> None:
    bobs = _bobs_memory()
    before = _state(bobs.id)
    candidate = Candidate(kind=CandidateKind.REMEMBER, text="User lives in Porto")
    plan = ExtractionPlan.from_dict(
        {
            "from_seq": 1,
            "to_seq": 1,
            "scope": {"user_id": "alice", "agent_id": "engram", "namespace": "default"},
            "extractor": {"model": "rules", "prompt_version": "rules-v2"},
            "source": ["t1"],
            "ops": [
                Op("update", candidate, target_id=bobs.id, text="User lives in Porto").as_dict(),
                Op("delete", candidate, target_id=bobs.id).as_dict(),
                Op("update", candidate, target_id=bobs.id, text="x", refused="update").as_dict(),
            ],
        }
    )
    outcomes = apply_plan(plan, session_id="s-alice", worker_id="w1")
    assert outcomes["update"] == outcomes["delete"] == 0, outcomes
    assert _state(bobs.id) == before


def test_only_staff_get_every_owner() -> None:
    with pytest.raises(PermissionDenied):
        staff_owner(AnonymousUser())


@pytest.mark.django_db
def test_a_view_only_staff_member_gets_no_owner_for_changes_even_without_the_decorator(
    django_user_model, redis_client
) -> None:
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.test import RequestFactory

    from inspector.views import memories as views
    from tests.test_pages import _staff

    viewer = _staff(django_user_model)
    assert staff_owner(viewer) == Owner.anyone()
    with pytest.raises(PermissionDenied):
        staff_owner(viewer, change=True)

    memory = add_memory(text="User lives in Porto", scope=Scope(user_id="alice"), actor=BOB)
    request = RequestFactory().post("/", {"reason": "test"})
    request.user = viewer
    request.session = {}  # type: ignore[assignment]
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    undecorated = views.delete_memory.__wrapped__  # type: ignore[attr-defined]  # lost @change_required
    with pytest.raises(PermissionDenied):
        undecorated(request, memory.id)
    assert not get_memory(owner=ALICE, memory_id=memory.id).deleted


def test_an_idempotent_replay_reads_as_the_items_user_not_as_anyone(redis_client) -> None:
    from memory.services import NewMemory, add_memories

    def add(user_id: str) -> list[Memory]:
        item = NewMemory(text=f"{user_id} lives in Porto", scope=Scope(user_id=user_id), idempotency_key="k1")
        return add_memories(items=[item], actor=BOB)

    [first] = add("alice")
    [replayed] = add("alice")
    assert replayed.id == first.id and replayed.text == "alice lives in Porto"
    with pytest.raises(MemoryNotFound):  # the key names alice's memory: bob is not handed it
        add("bob")
    assert get_memory(owner=ALICE, memory_id=first.id).text == "alice lives in Porto"
