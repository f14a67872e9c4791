"""A search hit as the clients show it: one serialisation with the few views they need.

The trace keeps a hit as `memory.traces.TraceHit` (its text and scores at the time of the turn);
the staff view of a chat frame is that same record plus which number ranked it, a user's view has
no scores (they explain nothing to them), and a tool result gives the model the final score only.
The keys are read by the browser (static/js/chat.js) and by stored traces: keep them.
"""

from __future__ import annotations

from typing import Any, Literal

from memory.traces import TraceHit
from memory.types import SCORE_DIGITS, SearchHit, score_text

HitView = Literal["staff", "user", "tool"]
_STAFF_KEYS = ("id", "text", "type", "reason", "scores")


def ranking(hit: SearchHit) -> dict[str, Any]:
    """Which number ranks a memory among those used: its final score, its importance (a profile
    question ranks facts by importance, not by a search) or none (staff pinned it)."""
    if hit.reason == "pinned":
        return {"ranked_by": "pinned", "rank": None, "why": "pinned by staff: always included"}
    if hit.reason == "profile":
        importance = hit.score.importance
        return {
            "ranked_by": "profile",
            "rank": round(importance, SCORE_DIGITS),
            "why": f"profile question: importance {score_text(importance)}",
        }
    final = hit.score.final
    return {"ranked_by": "score", "rank": round(final, SCORE_DIGITS), "why": f"score {score_text(final)}"}


def hit_as_dict(hit: SearchHit, *, view: HitView, text: str | None = None) -> dict[str, Any]:
    """`view`: "staff" (stored text, type, reason, all scores and the ranking), "user" (id and
    text only) or "tool" (id, text, type and the final score to 3 digits). `text` replaces the
    stored text (a user reads their memory phrased to them)."""
    memory = hit.memory
    if view == "user":
        data: dict[str, Any] = {"id": memory.id, "text": memory.text}
    elif view == "tool":
        data = {
            "id": memory.id,
            "text": memory.text,
            "type": str(memory.type),
            "score": round(hit.score.final, 3),
        }
    else:
        stored = TraceHit.from_hit(hit).as_dict()
        data = {**{key: stored[key] for key in _STAFF_KEYS}, **ranking(hit)}
    if text is not None:
        data["text"] = text
    return data
