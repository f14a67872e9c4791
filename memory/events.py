"""Mutation events: one small constructor per kind of change, recorded with the change itself.

Services build an event with these functions, queue `record(pipe, event)` in the same MULTI as
the write (so history never disagrees with the data), and call `publish(...)` only after EXEC
succeeded (so the live feed never shows a change that did not happen).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from redis.client import Pipeline

from core.channel_layer import group_send_from_sync
from core.text import clean_text
from memory import keys
from memory.types import Actor, HistoryEvent, Memory

logger = logging.getLogger(__name__)

FEED_GROUP = "memory-feed"


def _event(
    name: str,
    memory: Memory,
    actor: Actor,
    *,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    reason: str = "",
    version: int | None = None,
    at: float | None = None,
    **details: Any,
) -> HistoryEvent:
    return HistoryEvent(
        event=name,
        memory_id=memory.id,
        user_id=memory.scope.user_id,
        version=memory.version if version is None else version,
        actor=actor,
        at=time.time() if at is None else at,
        old=old,
        new=new,
        reason=clean_text(reason),
        details=details,
    )


def memory_added(memory: Memory, actor: Actor, reason: str = "", *, at: float | None = None) -> HistoryEvent:
    return _event("added", memory, actor, new=memory.snapshot(), reason=reason, at=at)


# A memory made without a TTL gets no history list until it first changes (~540 B a memory saved:
# most memories never change). Its "added" entry is rebuilt from the hash (`added_entry`), which
# then holds what the memory itself does not: when the add happened, if not at `created_at` (a
# back-dated import), and its reason. A memory with a TTL keeps its list from the start: when it
# expires, the retention sweep reads its history after the hash is gone.
ADDED_AT = "a_at"  # milliseconds after created_at
ADDED_REASON = "a_why"


def added_at(memory: Memory, *, now: float) -> float:
    """When a new memory is added, as its "added" entry says: `now`, in whole milliseconds after
    a back-dated `created_at` (so the hash keeps a small integer, and rebuilding gives the same float)."""
    if memory.created_at == now:
        return now
    return _after(memory.created_at, round((now - memory.created_at) * 1000))


def _after(created_at: float, offset_ms: int) -> float:
    return created_at + offset_ms / 1000


def added_fields(event: HistoryEvent, memory: Memory) -> dict[str, Any]:
    """The hash fields a memory without a history list keeps for its "added" entry."""
    out: dict[str, Any] = {}
    if event.at != memory.created_at:
        offset = round((event.at - memory.created_at) * 1000)
        assert _after(memory.created_at, offset) == event.at, "use added_at() for the event's time"
        out[ADDED_AT] = offset
    if event.reason:
        out[ADDED_REASON] = event.reason
    return out


def added_entry(memory: Memory, raw: Mapping[Any, Any]) -> HistoryEvent:
    """The "added" entry of a memory that has not changed since it was made (its hash as `memory`
    and `raw`), as `memory_added` wrote it."""
    at = raw.get(ADDED_AT.encode(), raw.get(ADDED_AT))
    reason = raw.get(ADDED_REASON.encode(), raw.get(ADDED_REASON))
    return HistoryEvent(
        event="added",
        memory_id=memory.id,
        user_id=memory.scope.user_id,
        version=1,
        actor=memory.created_by,
        at=memory.created_at if at is None else _after(memory.created_at, int(at)),
        new=memory.snapshot(),
        reason="" if reason is None else (reason.decode() if isinstance(reason, bytes) else str(reason)),
    )


def memory_updated(before: Memory, after: Memory, actor: Actor, reason: str = "") -> HistoryEvent:
    return _event("updated", after, actor, old=before.snapshot(), new=after.snapshot(), reason=reason)


def memory_version_restored(
    before: Memory, after: Memory, actor: Actor, *, from_version: int
) -> HistoryEvent:
    return _event(
        "version_restored",
        after,
        actor,
        old=before.snapshot(),
        new=after.snapshot(),
        reason=f"restored version {from_version}",
        from_version=from_version,
    )


def memory_deleted(memory: Memory, actor: Actor, reason: str = "", *, grace_seconds: int) -> HistoryEvent:
    return _event("deleted", memory, actor, old=memory.snapshot(), reason=reason, grace_seconds=grace_seconds)


def last_deletion(history: Sequence[HistoryEvent]) -> HistoryEvent | None:
    """The delete that put a memory in the trash: the newest "deleted" entry of its history."""
    return next((e for e in reversed(history) if e.event == "deleted"), None)


def memory_restored(memory: Memory, actor: Actor, reason: str = "") -> HistoryEvent:
    return _event("restored", memory, actor, new=memory.snapshot(), reason=reason)


def memory_flag_changed(
    memory: Memory, actor: Actor, *, flag: str, value: bool, reason: str = ""
) -> HistoryEvent:
    return _event(f"{flag}" if value else f"un{flag}", memory, actor, reason=reason, flag=flag, value=value)


def memory_ttl_changed(
    memory: Memory, actor: Actor, *, ttl_seconds: int | None, reason: str = ""
) -> HistoryEvent:
    return _event("ttl_changed", memory, actor, reason=reason, ttl_seconds=ttl_seconds)


def change_refused(
    memory: Memory, actor: Actor, *, action: str, proposed_text: str, reason: str
) -> HistoryEvent:
    """A change an actor asked for and was not allowed to make (e.g. the extractor updating a memory
    staff locked): nothing changed, but support can see what was asked and why it was refused."""
    return _event(
        "change_refused", memory, actor, reason=reason, action=action, proposed_text=clean_text(proposed_text)
    )


def memory_moved(memory: Memory, actor: Actor, *, from_user: str, to_user: str) -> HistoryEvent:
    return _event(
        "moved",
        memory,
        actor,
        reason=f"identity moved from {from_user}",
        from_user=from_user,
        to_user=to_user,
    )


def user_erased(user_id: str, actor: Actor, *, receipt_id: str, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "event": "user_erased",
        "memory_id": "",
        "user_id": user_id,
        "version": 0,
        "actor": actor.as_dict(),
        "at": time.time(),
        "old": None,
        "new": None,
        "reason": "erase requested",
        "details": {"receipt_id": receipt_id, "counts": counts},
    }


# Left in the audit stream when a memory is gone for good (its TTL ran out / its grace period ended):
# that it existed and when it went, never what it said.
FORGOTTEN = ("expired", "purged")


def memory_forgotten(
    *, memory_id: str, user_id: str, kind: str, version: int, memory_type: str, actor: Actor, at: float
) -> dict[str, Any]:
    assert kind in FORGOTTEN
    return {
        "event": kind,
        "memory_id": memory_id,
        "user_id": user_id,
        "version": version,
        "actor": actor.as_dict(),
        "at": at,
        "old": None,
        "new": None,
        "reason": "",
        "details": {"type": memory_type},
    }


def _entry_json(event: HistoryEvent) -> str:
    # Without the spaces json.dumps puts after "," and ":": ~25 B less an entry (every list).
    return json.dumps(event.as_dict(), separators=(",", ":"))


# KEYS: a history list; ARGV: the memory's rebuilt "added" entry, then this change's entry. The
# "added" entry goes first when the list does not exist yet (the memory's first change).
_FIRST_CHANGE = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('RPUSH', KEYS[1], ARGV[1]) end
return redis.call('RPUSH', KEYS[1], ARGV[2])
"""


def record(
    pipe: Pipeline, event: HistoryEvent, *, added: HistoryEvent | None = None, listed: bool = True
) -> None:
    """Queue the history entry and the stream entry on a MULTI pipeline.

    `added`: the changed memory's "added" entry as rebuilt from its hash before this change
    (`added_entry`), written first if the memory has no history list yet. `listed=False` (a new
    memory without a TTL) writes the stream entry only: readers rebuild the entry from the hash.

    The stream entry is a pointer to the history entry (memory id, event, time): the full JSON is
    ~500 B a copy, and the history list holds it already. Readers resolve it with
    `memory.selectors.recent_events`; an entry whose history is gone (purged) resolves to nothing,
    and its memory's own "purged"/"expired" entry (full data, no text) tells what became of it."""
    entry = _entry_json(event)
    if added is not None:
        # The raw command: redis-py's cluster pipeline has no eval() (one slot here, so it may run).
        pipe.execute_command(
            "EVAL", _FIRST_CHANGE, 1, keys.history(event.memory_id), _entry_json(added), entry
        )
    elif listed:
        pipe.rpush(keys.history(event.memory_id), entry)
    pipe.xadd(
        keys.mutation_stream(),
        {"event": event.event, "user_id": event.user_id, "memory_id": event.memory_id, "at": repr(event.at)},
        maxlen=settings.HISTORY_STREAM_MAXLEN,
        approximate=True,
    )


def append_to_stream(pipe: Pipeline, *, payload: str, user_id: str, event: str) -> None:
    """An audit entry that carries its whole event (erases, forgotten memories, dead letters: no
    history list holds them)."""
    pipe.xadd(
        keys.mutation_stream(),
        {"event": event, "user_id": user_id, "data": payload},
        maxlen=settings.HISTORY_STREAM_MAXLEN,
        approximate=True,
    )


def publish(events: list[HistoryEvent] | list[dict[str, Any]]) -> None:
    """Tell open inspector pages; best effort, after the write succeeded."""
    if not events:
        return
    messages = [
        {"type": "memory.mutation", "event": e.as_dict() if isinstance(e, HistoryEvent) else e}
        for e in events
    ]
    try:
        group_send_from_sync(FEED_GROUP, messages)
    except Exception:  # the feed is a convenience; the write already succeeded
        logger.warning("could not publish %d mutation event(s) to the live feed", len(events), exc_info=True)


def decisions_group(session_id: str) -> str:
    """Where the extractor tells a chat's demo panel about plan steps that changed nothing."""
    return f"memory-decisions-{session_id}"


def publish_decisions(*, session_id: str, decisions: list[dict[str, Any]]) -> None:
    """No-op steps (a duplicate, nothing to forget) leave no history entry; the demo panel still
    shows them. Best effort, like `publish`."""
    if not decisions:
        return
    messages = [{"type": "memory.decision", "decision": d} for d in decisions]
    try:
        group_send_from_sync(decisions_group(session_id), messages)
    except Exception:
        logger.warning("could not publish %d extraction decision(s)", len(decisions), exc_info=True)
