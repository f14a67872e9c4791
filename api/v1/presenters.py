"""Engine records as a caller reads them: with the session ids it knows them by.

An app key's sessions are stored under "<agent>/<its id>" (api.callers); a memory it filed under a
session shows that session as the app named it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from api.callers import ApiCaller
from memory.hits import hit_as_dict
from memory.types import Memory, MemoryNotFound, SearchHit


def memory_for(caller: ApiCaller, memory: Memory) -> Memory:
    stored = memory.scope.session_id
    try:
        external = caller.external_session_id(stored)
    except MemoryNotFound:
        # Filed by someone else under a session id of their own (staff, the chat): shown as stored.
        return memory
    return memory if external == stored else replace(memory, scope=replace(memory.scope, session_id=external))


def hits_for(caller: ApiCaller, hits: list[SearchHit]) -> list[dict[str, Any]]:
    """Each hit with every score that ranked it (`memory.hits`, staff view) and its memory."""
    return [{**hit_as_dict(hit, view="staff"), "memory": memory_for(caller, hit.memory)} for hit in hits]
