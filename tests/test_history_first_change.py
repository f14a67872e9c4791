"""A memory made without a TTL gets no history list until it first changes (issue 17: ~540 B a
memory). Its "added" entry is rebuilt from the memory for every reader, and the first change writes
it to the list before its own entry, so the history reads the same before and after."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from memory import keys
from memory.access import Owner
from memory.lifecycle import erase_user, move_identity
from memory.selectors import audit_events, memory_history, memory_history_page, recent_events
from memory.services import (
    NewMemory,
    add_memories,
    add_memory,
    delete_memories,
    restore_version,
    set_pinned,
    update_memory,
)
from memory.types import MemoryType
from tests.memory_helpers import ANYONE, EXTRACTOR, STAFF, USER, scope

pytestmark = pytest.mark.django_db


def _added(**kwargs: Any) -> Any:
    defaults: dict[str, Any] = {
        "text": "Alice likes green tea",
        "scope": scope("alice"),
        "actor": EXTRACTOR,
        "type": MemoryType.SEMANTIC,
        "topics": ["food"],
        "entities": ["tea"],
        "reason": "new information",
    }
    return add_memory(**{**defaults, **kwargs})


def _listed(redis_client: Any, memory_id: str) -> list[dict[str, Any]]:
    return [json.loads(item) for item in redis_client.lrange(keys.history(memory_id), 0, -1)]


def test_a_memory_without_ttl_has_no_list_and_reads_its_added_entry(redis_client: Any) -> None:
    memory = _added()
    assert memory.ttl_seconds is None
    assert not redis_client.exists(keys.history(memory.id))
    [entry] = memory_history(memory_id=memory.id)
    assert entry.event == "added" and entry.version == 1
    assert entry.memory_id == memory.id and entry.user_id == "alice"
    assert entry.actor == EXTRACTOR
    assert entry.reason == "new information"
    assert entry.at == memory.created_at
    assert entry.old is None and entry.new == memory.snapshot()
    page = memory_history_page(memory_id=memory.id, owner=Owner.user("alice"))
    assert [e.as_dict() for e in page.events] == [entry.as_dict()] and page.next_start is None
    assert memory_history_page(memory_id=memory.id, owner=ANYONE, start=1).events == []


def test_the_first_change_writes_the_added_entry_then_its_own(redis_client: Any) -> None:
    memory = _added()
    before = memory_history(memory_id=memory.id)[0].as_dict()
    update_memory(memory_id=memory.id, owner=ANYONE, actor=USER, text="Alice likes black tea")
    listed = _listed(redis_client, memory.id)
    assert [e["event"] for e in listed] == ["added", "updated"]
    assert listed[0] == before
    assert [e.as_dict() for e in memory_history(memory_id=memory.id)] == listed
    # A second change appends only its own entry.
    set_pinned(memory_id=memory.id, owner=ANYONE, pinned=True, actor=STAFF)
    assert [e["event"] for e in _listed(redis_client, memory.id)] == ["added", "updated", "pinned"]


def test_undo_to_version_1_after_the_first_edit(redis_client: Any) -> None:
    memory = _added()
    update_memory(memory_id=memory.id, owner=ANYONE, actor=USER, text="Alice likes coffee")
    restored = restore_version(memory_id=memory.id, owner=ANYONE, version=1, actor=USER)
    assert restored.text == "Alice likes green tea" and restored.version == 3
    assert [e.event for e in memory_history(memory_id=memory.id)] == ["added", "updated", "version_restored"]


def test_a_memory_with_a_ttl_keeps_its_list_from_the_start(redis_client: Any) -> None:
    memory = _added(ttl_seconds=3600)
    listed = _listed(redis_client, memory.id)
    assert [e["event"] for e in listed] == ["added"]
    assert listed[0]["reason"] == "new information"
    assert not redis_client.hexists(keys.memory(memory.id), "a_why")


def test_a_back_dated_memory_keeps_when_it_was_added(redis_client: Any) -> None:
    started = time.time()
    memory = _added(text="Alice moved to Lyon", reason="")
    # add_memory has no created_at: back-date through the batch call, as an import does.
    [old] = add_memories(
        items=[NewMemory(text="Alice was born in Oslo", scope=scope("alice"), created_at=1_000_000.0)],
        actor=USER,
    )
    [entry] = memory_history(memory_id=old.id)
    assert entry.at >= started - 0.001 and old.created_at == 1_000_000.0
    # Kept as whole milliseconds after created_at (a small integer in the hash).
    offset = int(redis_client.hget(keys.memory(old.id), "a_at"))
    assert offset == round((entry.at - old.created_at) * 1000)
    [published] = recent_events(user_id="alice", limit=1)
    assert published == entry.as_dict()
    update_memory(memory_id=old.id, owner=ANYONE, actor=USER, text="Alice was born in Bergen")
    assert _listed(redis_client, old.id)[0] == entry.as_dict()
    assert memory_history(memory_id=memory.id)[0].reason == ""


def test_bulk_delete_and_move_write_the_added_entry_first(redis_client: Any) -> None:
    kept = _added(text="Alice plays chess")
    gone = _added(text="Alice plays go")
    rebuilt = {m.id: memory_history(memory_id=m.id)[0].as_dict() for m in (kept, gone)}
    delete_memories(memory_ids=[gone.id], owner=ANYONE, actor=USER)
    assert _listed(redis_client, gone.id)[0] == rebuilt[gone.id]
    assert [e["event"] for e in _listed(redis_client, gone.id)] == ["added", "deleted"]
    move_identity(from_user_id="alice", to_user_id="alice-2", actor=STAFF)
    listed = _listed(redis_client, kept.id)
    assert listed[0] == rebuilt[kept.id] and listed[0]["user_id"] == "alice"
    assert [e["event"] for e in listed] == ["added", "moved"]


def test_the_audit_stream_resolves_an_added_entry_without_a_list(redis_client: Any) -> None:
    memory = _added()
    [newest] = recent_events(user_id="alice", limit=1)
    assert newest == memory_history(memory_id=memory.id)[0].as_dict()
    entries = [fields for _id, fields in redis_client.xrange(keys.mutation_stream())]
    assert audit_events(entries) == [newest]


def test_erase_removes_a_memory_without_a_list_and_its_added_entry(redis_client: Any) -> None:
    memory = _added()
    changed = _added(text="Alice reads novels")
    update_memory(memory_id=changed.id, owner=ANYONE, actor=USER, text="Alice reads poems")
    erase_user(user_id="alice", actor=STAFF)
    for memory_id in (memory.id, changed.id):
        assert not redis_client.exists(keys.memory(memory_id), keys.history(memory_id))
        assert memory_history(memory_id=memory_id) == []
    assert [e["event"] for e in recent_events(user_id="alice")] == ["user_erased"]
