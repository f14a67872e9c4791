"""Whose memories a by-id engine call may read or change.

Every call that names one memory by id (`selectors.get_memory`, `services.update_memory`,
`delete_memory`, ...) takes an `Owner`. A memory outside it is "not found", exactly like a missing
id, so a caller holding someone else's id learns nothing, not even that it exists. The chat passes
`Owner.user(<the signed-in user's memory id>)`; the extraction worker the scope of the turns it
works on; only staff paths, after their permission check, pass `Owner.anyone()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from memory.query import validate_scope_id
from memory.types import Memory, MemoryNotFound


@dataclass(frozen=True)
class Owner:
    user_id: str | None  # None: any user's memory (staff, after their permission check)

    @classmethod
    def user(cls, user_id: str) -> Owner:
        return cls(validate_scope_id(user_id, name="user_id"))

    @classmethod
    def anyone(cls) -> Owner:
        return cls(None)

    def admits(self, memory: Memory) -> bool:
        return self.user_id is None or memory.scope.user_id == self.user_id

    def require(self, memory: Memory) -> Memory:
        """The memory, or MemoryNotFound (the same error a missing id gets) when it is not theirs."""
        if not self.admits(memory):
            raise MemoryNotFound(f"no memory {memory.id}")
        return memory
