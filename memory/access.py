"""Whose memories a by-id engine call may read or change.

Every call that names one memory by id (`selectors.get_memory`, `services.update_memory`,
`delete_memory`, ...) takes an `Owner`. A memory outside it is "not found", exactly like a missing
id, so a caller holding someone else's id learns nothing, not even that it exists. The chat passes
`Owner.user(<the signed-in user's memory id>)`; the extraction worker the scope of the turns it
works on; an app API key `Owner.app(...)` (its agent and namespaces, any user or one); only staff
paths, after their permission check, pass `Owner.anyone()`.

Every field that is set narrows: `user_id=None` means "any user" only for the user; an Owner with
an agent id still admits nothing of another agent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from memory.query import validate_scope_id
from memory.types import InvalidInput, Memory, MemoryNotFound


@dataclass(frozen=True)
class Owner:
    user_id: str | None  # None: any user's memory (staff after their permission check, or an app)
    agent_id: str | None = None  # None: any agent's
    namespaces: tuple[str, ...] | None = None  # None: any namespace; otherwise one of these

    @classmethod
    def user(cls, user_id: str) -> Owner:
        return cls(validate_scope_id(user_id, name="user_id"))

    @classmethod
    def anyone(cls) -> Owner:
        return cls(None)

    @classmethod
    def app(cls, *, agent_id: str, namespaces: Iterable[str], user_id: str | None = None) -> Owner:
        """An app key's reach: its agent's memories in its namespaces (of one user, or of any)."""
        allowed = tuple(validate_scope_id(ns, name="namespace") for ns in namespaces)
        if not allowed:
            raise InvalidInput("an app needs at least one namespace")
        return cls(
            user_id=None if user_id is None else validate_scope_id(user_id, name="user_id"),
            agent_id=validate_scope_id(agent_id, name="agent_id"),
            namespaces=allowed,
        )

    @property
    def unconfined(self) -> bool:
        """True only for `Owner.anyone()`: every user, agent and namespace."""
        return self.user_id is None and self.agent_id is None and self.namespaces is None

    def admits(self, memory: Memory) -> bool:
        scope = memory.scope
        return (
            (self.user_id is None or scope.user_id == self.user_id)
            and (self.agent_id is None or scope.agent_id == self.agent_id)
            and (self.namespaces is None or scope.namespace in self.namespaces)
        )

    def require(self, memory: Memory) -> Memory:
        """The memory, or MemoryNotFound (the same error a missing id gets) when it is not theirs."""
        if not self.admits(memory):
            raise MemoryNotFound(f"no memory {memory.id}")
        return memory
