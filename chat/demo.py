"""The memory demo beside a chat (staff, or anyone while DEBUG is on): what each turn recalled and
why, and what the background changed, as plain data the panel's socket sends.

Everything here is a read of what the engine already records: retrieval traces (memory.prompt saves
one per turn, with the rule that admitted each memory), the mutation events (memory.events), and
the extractor's no-op decisions (memory.events.publish_decisions). No scoring is redone here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from memory.selectors import event_text, named_memory_texts, recent_events
from memory.traces import RetrievalTrace, TraceHit, session_traces, turn_trace
from memory.types import score_text

# On connect the panel gets the story so far: the last few turns and background changes.
RECENT_TURNS = 5
RECENT_CHANGES = 12
NEAR_MISSES_SHOWN = 3

# A mutation event's name, as the decision a presenter points at.
DECISIONS = {
    "added": "add",
    "updated": "update",
    "version_restored": "update",
    "deleted": "delete",
    "restored": "restore",
    "change_refused": "no-op",
    "expired": "expired",
    "purged": "purged",
    "moved": "moved",
    "ttl_changed": "ttl",
    "pinned": "pin",
    "unpinned": "unpin",
    "locked": "lock",
    "unlocked": "unlock",
}


def demo_allowed(user: Any) -> bool:
    """Who may see the demo: staff, or anyone on a development server (settings.DEBUG)."""
    return bool(settings.DEBUG or getattr(user, "is_staff", False))


def _mapping(value: Any) -> dict[str, Any]:
    """Stored events and traces are JSON from Redis: a field of the wrong shape reads as empty."""
    return value if isinstance(value, dict) else {}


def _hit(hit: TraceHit, *, rule: str = "") -> dict[str, Any]:
    return {
        "id": hit.id,
        "text": "" if hit.forgotten else hit.text,
        "type": hit.type,
        "score": hit.scores.get("final", 0.0),
        "rule": rule or hit.admitted_by or hit.why,
        "forgotten": hit.forgotten,
    }


def recall_frame(trace: RetrievalTrace) -> dict[str, Any]:
    """One turn's recall from its saved trace: the memories injected (score, admitting rule) and
    the best few that scored below the cut."""
    below = f"below the cut {score_text(trace.cut)}"
    return {
        "type": "recall",
        "turn_id": trace.turn_id,
        "at": trace.at,
        "query": "" if trace.query_forgotten else trace.query,
        "mode": trace.mode,
        "cut": trace.cut,
        "memories": [_hit(m) for m in trace.memories],
        "near_misses": [_hit(m, rule=below) for m in trace.near_misses[:NEAR_MISSES_SHOWN]],
    }


def turn_recall(*, session_id: str, turn_id: str) -> dict[str, Any] | None:
    trace = turn_trace(session_id=session_id, turn_id=turn_id)
    return recall_frame(trace) if trace else None


def recent_recalls(*, session_id: str, limit: int = RECENT_TURNS) -> list[dict[str, Any]]:
    """The last `limit` turns' recalls, oldest first (traces are keyed by time-ordered turn ids)."""
    return [recall_frame(t) for t in session_traces(session_id=session_id)[-limit:]]


def _actor(data: Any) -> str:
    if not isinstance(data, dict):
        return "unknown"
    kind, who = str(data.get("kind") or "unknown"), str(data.get("id") or "")
    return f"{kind} {who}".strip()


def change_frame(event: dict[str, Any], *, texts: dict[str, str | None] | None = None) -> dict[str, Any]:
    """A mutation event as one plain line: the memory's text, the decision, the actor, the reason.

    `texts` (memory.selectors.named_memory_texts) names the memory of an event that carries no
    text of its own (TTL, pin, lock, move), as the inspector feed does."""
    new, old = event.get("new") or {}, event.get("old") or {}
    details = _mapping(event.get("details"))
    snapshot = new if isinstance(new, dict) and new else old if isinstance(old, dict) else {}
    memory_id = str(event.get("memory_id", ""))
    # A refused change has no snapshot, only what was asked; a forgotten memory keeps no words.
    text = event_text(event) or (texts or {}).get(memory_id) or ""
    memory_type = str(snapshot.get("type") or details.get("type") or "")
    name = str(event.get("event", ""))
    return {
        "type": "change",
        "decision": DECISIONS.get(name, name.replace("_", " ")),
        "text": text,
        "memory_type": memory_type,
        "memory_id": memory_id,
        "actor": _actor(event.get("actor")),
        "reason": str(event.get("reason", "")),
        "at": float(event.get("at") or 0.0),
    }


def live_change(event: dict[str, Any]) -> dict[str, Any]:
    """The change line of one event as it happens (reads the memory's text: Redis, not async)."""
    return change_frame(event, texts=named_memory_texts([event]))


def decision_frame(decision: dict[str, Any]) -> dict[str, Any]:
    """An extractor step that changed nothing (memory.events.publish_decisions), as a change line."""
    return {
        "type": "change",
        "decision": "no-op",
        "text": str(decision.get("text", "")),
        "memory_type": str(decision.get("memory_type", "")),
        "memory_id": str(decision.get("memory_id", "")),
        "actor": _actor(decision.get("actor")),
        "reason": str(decision.get("reason", "")),
        "at": float(decision.get("at") or 0.0),
    }


def recent_changes(*, user_id: str, limit: int = RECENT_CHANGES) -> list[dict[str, Any]]:
    """The user's newest background changes from the audit stream, oldest first."""
    events = list(reversed(recent_events(user_id=user_id, limit=limit)))
    texts = named_memory_texts(events)
    return [change_frame(e, texts=texts) for e in events]


def snapshot(*, session_id: str, user_id: str) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "recalls": recent_recalls(session_id=session_id),
        "changes": recent_changes(user_id=user_id),
    }
