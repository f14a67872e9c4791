"""Finding and blanking the words of forgotten memories in stored JSON (pure functions, no Redis)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

# Trace lists whose entries are memories (`memory.traces.TraceHit`).
TRACE_HIT_LISTS = ("memories", "dropped_for_budget", "near_misses", "left_out")
# A raw turn longer than the memory limit was stored clipped, ending in this.
_CLIP_MARK = "…"
_ULID = re.compile(r"(?<![0-9A-Z])[0-9A-HJKMNP-TV-Z]{26}(?![0-9A-Z])")


@dataclass(frozen=True)
class Forgotten:
    """Memories that are gone: their ids and every text they ever had."""

    memory_ids: frozenset[str]
    texts: tuple[str, ...] = ()

    @cached_property
    def _plain(self) -> tuple[str, ...]:
        return tuple(t.removesuffix(_CLIP_MARK).strip() for t in self.texts if t.strip())

    @cached_property
    def _escaped(self) -> tuple[str, ...]:
        # Stored JSON is written by json.dumps (ASCII escapes); escaping is per character, so a
        # text inside a JSON string appears exactly as its own escaped form.
        return tuple(json.dumps(t)[1:-1] for t in self._plain)

    def __bool__(self) -> bool:
        return bool(self.memory_ids or self._plain)

    @cached_property
    def _odd_ids(self) -> tuple[str, ...]:
        return tuple(m for m in self.memory_ids if not _ULID.fullmatch(m))

    def mentioned_in(self, raw_json: str) -> bool:
        """Does this stored JSON name one of the memories or hold one of their texts?"""
        if not self or not raw_json:
            return False
        # Ids are ULIDs: one pass over the text's ULID-shaped words, however many ids are gone
        # (the first sweep after an upgrade finds every memory that ever expired).
        if any(word in self.memory_ids for word in _ULID.findall(raw_json)):
            return True
        return any(m in raw_json for m in self._odd_ids) or any(t in raw_json for t in self._escaped)

    def said_in(self, text: str) -> bool:
        return any(t in text for t in self._plain)


def trace_memory_ids(trace: dict[str, Any]) -> set[str]:
    return {
        str(hit.get("id", ""))
        for name in TRACE_HIT_LISTS
        for hit in trace.get(name) or []
        if isinstance(hit, dict)
    }


def redact_trace(trace: dict[str, Any], forgotten: Forgotten) -> bool:
    """Blank (in place) the texts of forgotten memories in a retrieval trace; True if it changed.

    The entries stay (ids, scores, why they were chosen): the trace still explains the turn."""
    changed = False
    for name in TRACE_HIT_LISTS:
        for hit in trace.get(name) or []:
            if not isinstance(hit, dict) or hit.get("forgotten"):
                continue
            if hit.get("id") in forgotten.memory_ids:
                hit["text"] = ""
                hit["forgotten"] = True
                changed = True
    query = trace.get("query")
    if isinstance(query, str) and query and forgotten.said_in(query):
        trace["query"] = ""
        trace["query_forgotten"] = True
        changed = True
    return changed
