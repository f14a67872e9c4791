"""Who may change what about a memory: the one table every write in memory.services asks.

- **staff** may do anything: they set the pins and locks, so they may also change what they locked.
- **system** (retention, expiry, identity moves) may do anything.
- **user**, the memory's owner on their own pages: may delete any of their memories, even pinned or
  locked ones (it is their data; privacy wins over a support correction, and the soft delete keeps
  it restorable by staff for the grace period); may restore only what they deleted themselves (a
  memory support or the system removed stays removed); may restore, update or set the expiry of a
  memory unless staff locked it; may not pin or lock.
- **tool** (the chat model's memory tools) and **extractor**: may update or delete a memory only
  when it is neither locked nor pinned, and nothing else.
- **app** (another agent through an app API key) is held to the same rule as the tool, and may also
  set the expiry of, or restore, a memory that is neither locked nor pinned; a restore only of what
  that same key deleted (like a user's). A pin says "this matters", a lock "this
  was corrected by support"; neither the model nor the extractor may overrule either.

Callers that only ask (the extraction planner, the chat tools) get the same reason the write would
raise, so what the model or the history says is what the rule says.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from memory.types import Actor, ActorKind, Memory, MemoryLocked


class Change(StrEnum):
    UPDATE = "update"  # text, type, topics, entities, event date; also restoring an older version
    DELETE = "delete"
    RESTORE = "restore"  # undo a soft delete
    EXPIRY = "expiry"  # set, extend or remove the TTL
    PIN = "pin"
    UNPIN = "unpin"
    LOCK = "lock"
    UNLOCK = "unlock"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""  # why not, in plain words fit for the model, the history and a staff page

    def enforce(self) -> None:
        if not self.allowed:
            raise MemoryLocked(self.reason)


ALLOWED = Decision(True)
_LOCKED_OR_PINNED = ("locked", "pinned")
# Per actor kind: the changes it may make, each with the protections that stop it. A change not
# listed is for staff only; an actor kind not listed may change nothing.
_TABLE: dict[ActorKind, dict[Change, tuple[str, ...]]] = {
    ActorKind.STAFF: {change: () for change in Change},
    ActorKind.SYSTEM: {change: () for change in Change},
    ActorKind.USER: {
        Change.DELETE: (),
        Change.UPDATE: ("locked",),
        Change.RESTORE: ("locked",),
        Change.EXPIRY: ("locked",),
    },
    ActorKind.TOOL: {Change.UPDATE: _LOCKED_OR_PINNED, Change.DELETE: _LOCKED_OR_PINNED},
    ActorKind.EXTRACTOR: {Change.UPDATE: _LOCKED_OR_PINNED, Change.DELETE: _LOCKED_OR_PINNED},
    ActorKind.APP: {
        Change.UPDATE: _LOCKED_OR_PINNED,
        Change.DELETE: _LOCKED_OR_PINNED,
        Change.EXPIRY: _LOCKED_OR_PINNED,
        Change.RESTORE: _LOCKED_OR_PINNED,
    },
}
# Who may restore only what they deleted themselves (kind and id must match the deleter's).
_OWN_DELETES_ONLY = {ActorKind.USER, ActorKind.APP}
_STAFF_ONLY = {
    Change.UPDATE: "only staff can change this memory",
    Change.DELETE: "only staff can delete this memory",
    Change.RESTORE: "only staff can restore a deleted memory",
    Change.EXPIRY: "only staff can change when a memory expires",
    Change.PIN: "only staff can pin or unpin a memory",
    Change.UNPIN: "only staff can pin or unpin a memory",
    Change.LOCK: "only staff can lock or unlock a memory",
    Change.UNLOCK: "only staff can lock or unlock a memory",
}


NOT_YOUR_DELETION = "only what you forgot yourself can be restored here"


def may_change(*, actor: Actor, memory: Memory, change: Change, deleted_by: Actor | None = None) -> Decision:
    """May `actor` make `change` to `memory` as it is now? If not, the reason says why.

    `deleted_by` (for a restore) is who put the memory in the trash, from its history."""
    rules = _TABLE.get(actor.kind, {})
    if change not in rules:
        return Decision(False, _STAFF_ONLY[change])
    if change == Change.RESTORE and actor.kind in _OWN_DELETES_ONLY and not _same_actor(deleted_by, actor):
        return Decision(False, NOT_YOUR_DELETION)
    for protection in rules[change]:
        if getattr(memory, protection):
            return Decision(False, f"that memory is {protection} by support and was not changed")
    return ALLOWED


def _same_actor(one: Actor | None, other: Actor) -> bool:
    return one is not None and one.kind == other.kind and one.id == other.id
