"""Turning engine data into what the templates show: datetimes, durations, history entries with
their diffs, feed entries, score explanations. Pure functions of their input (no Redis), so they
are cheap to test."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.urls import reverse

from inspector.diff import Segment, word_diff
from memory.events import FORGOTTEN
from memory.scoring import explain_score, score_legend
from memory.selectors import event_text
from memory.topics import internal_topics, visible_topics
from memory.traces import RetrievalTrace, TraceHit
from memory.types import Actor, HistoryEvent, Memory
from memory.working import Session

EVENT_LABELS = {
    "added": "Added",
    "updated": "Edited",
    "version_restored": "Version restored",
    "deleted": "Deleted",
    "restored": "Undeleted",
    "pinned": "Pinned",
    "unpinned": "Unpinned",
    "locked": "Locked",
    "unlocked": "Unlocked",
    "ttl_changed": "TTL changed",
    "change_refused": "Change refused",
    "moved": "Moved to another user",
    "user_erased": "User erased",
    "expired": "Expired (words removed)",
    "purged": "Purged (words removed)",
}

_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def as_datetime(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, tz=UTC) if epoch else None


def duration_text(seconds: float | None) -> str:
    """The two largest units: "3 h 12 min", "2 d 4 h", "45 s". None reads as "never"."""
    if seconds is None:
        return "never"
    remaining = max(0, int(seconds))
    if remaining == 0:
        return "0 s"
    parts: list[str] = []
    for name, size in _UNITS:
        if remaining >= size:
            parts.append(f"{remaining // size} {name}")
            remaining %= size
        elif parts:
            break  # "2 d 0 h" is noise: stop at the first empty unit after a used one
        if len(parts) == 2:
            break
    return " ".join(parts)


def event_label(event: str) -> str:
    return EVENT_LABELS.get(event, event.replace("_", " ").capitalize())


def user_url(user_id: str) -> str:
    return reverse("inspector:user", kwargs={"user_id": user_id})


def memory_url(memory_id: str) -> str:
    return reverse("inspector:memory", kwargs={"memory_id": memory_id})


@dataclass(frozen=True)
class MemoryView:
    """A memory with the derived values its table row and page show."""

    memory: Memory

    @property
    def url(self) -> str:
        return memory_url(self.memory.id)

    @property
    def created(self) -> datetime | None:
        return as_datetime(self.memory.created_at)

    @property
    def updated(self) -> datetime | None:
        return as_datetime(self.memory.updated_at)

    @property
    def last_accessed(self) -> datetime | None:
        return as_datetime(self.memory.last_accessed_at)

    @property
    def event_date(self) -> datetime | None:
        return as_datetime(self.memory.event_date)

    @property
    def ttl_text(self) -> str:
        return duration_text(self.memory.ttl_seconds)

    @property
    def topics(self) -> list[str]:
        """The areas of life it is filed under (what staff read and edit)."""
        return visible_topics(self.memory.topics)

    @property
    def internal_topics(self) -> list[str]:
        """The engine's own markers (slot, who said it): shown read-only, kept by every edit."""
        return internal_topics(self.memory.topics)


@dataclass(frozen=True)
class SessionView:
    session: Session

    @property
    def ttl_text(self) -> str:
        return duration_text(self.session.ttl_seconds)

    @property
    def created(self) -> datetime | None:
        return as_datetime(self.session.created_at)

    @property
    def updated(self) -> datetime | None:
        return as_datetime(self.session.updated_at)


@dataclass(frozen=True)
class HistoryEntry:
    event: str
    label: str
    version: int
    actor: Actor
    at: datetime | None
    reason: str
    text: str | None
    diff: list[Segment] | None
    changes: list[tuple[str, str, str]]
    details: dict[str, Any]
    restorable: bool
    ttl_text: str = ""


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    return "(none)" if value in (None, "") else str(value)


def _snapshot_changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(field, before, after) for the non-text fields an edit changed (type, topics, entities)."""
    if not old or not new:
        return []
    return [
        (name, _show(old.get(name)), _show(new.get(name)))
        for name in ("type", "topics", "entities")
        if old.get(name) != new.get(name)
    ]


def history_entries(events: list[HistoryEvent], *, current: Memory) -> list[HistoryEntry]:
    """Newest first. An entry can be restored when it carries a snapshot that differs from now."""
    now_text = (current.text, str(current.type), list(current.topics))
    entries = []
    for event in reversed(events):
        old_text, new_text = event.old_text, event.new_text
        diff = word_diff(old_text, new_text) if old_text is not None and new_text is not None else None
        snapshot = event.new
        restorable = bool(
            snapshot
            and not current.deleted
            and (snapshot.get("text"), snapshot.get("type"), list(snapshot.get("topics") or [])) != now_text
        )
        ttl_text = ""
        if event.event == "ttl_changed":
            ttl = event.details.get("ttl_seconds")
            ttl_text = f"TTL set to {duration_text(ttl)}" if ttl else "TTL removed: never expires"
        entries.append(
            HistoryEntry(
                event=event.event,
                label=event_label(event.event),
                version=event.version,
                actor=event.actor,
                at=as_datetime(event.at),
                reason=event.reason,
                text=new_text if new_text is not None else old_text,
                diff=diff if diff and any(op != "equal" for op, _ in diff) else None,
                changes=_snapshot_changes(event.old, event.new),
                details=event.details,
                restorable=restorable,
                ttl_text=ttl_text,
            )
        )
    return entries


@dataclass(frozen=True)
class FeedEntry:
    """One line of the live feed, from a HistoryEvent's dict (the channel message or the stream)."""

    event: str
    label: str
    user_id: str
    memory_id: str
    actor: Actor
    at: datetime | None
    text: str
    reason: str
    version: int
    counts: dict[str, int] = field(default_factory=dict)
    # The event carries no text (TTL, pin, lock, identity move): the memory's text now, or that
    # it is gone (expired, purged, erased).
    current_text: str = ""
    gone: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def gone_text(self) -> str:
        if self.event in FORGOTTEN:
            return "This memory is gone: its words were removed for good."
        return "This memory is gone (expired, purged or erased); its words are no longer stored."

    @property
    def ttl_text(self) -> str:
        if self.event != "ttl_changed":
            return ""
        ttl = self.details.get("ttl_seconds")
        return f"expires in {duration_text(ttl)}" if ttl else "never expires"

    @property
    def user_url(self) -> str:
        return user_url(self.user_id) if self.user_id else ""

    @property
    def memory_url(self) -> str:
        # A forgotten memory has no page any more.
        return memory_url(self.memory_id) if self.memory_id and self.event not in FORGOTTEN else ""


def feed_entry(data: dict[str, Any], *, texts: dict[str, str | None] | None = None) -> FeedEntry:
    """Tolerant of partial dicts: the feed must never break on an odd event.

    `texts` (memory id -> its text now, None when it is gone) names the memory of an event that
    carries no text of its own."""
    details = data.get("details") or {}
    counts = details.get("counts") if isinstance(details.get("counts"), dict) else {}
    try:
        actor = Actor.from_dict(data.get("actor") or {})
    except ValueError:
        actor = Actor.from_dict({})
    event = str(data.get("event", ""))
    memory_id = str(data.get("memory_id", ""))
    text = event_text(data)
    current = (texts or {}).get(memory_id, "") if memory_id and not text else ""
    return FeedEntry(
        event=event,
        label=event_label(event),
        user_id=str(data.get("user_id", "")),
        memory_id=str(data.get("memory_id", "")),
        actor=actor,
        at=as_datetime(float(data.get("at") or 0)),
        text=text,
        reason=str(data.get("reason", "")),
        version=int(data.get("version") or 0),
        counts={str(k).replace("_", " "): int(v) for k, v in (counts or {}).items()},
        current_text=current or "",
        gone=bool(memory_id) and not text and (event in FORGOTTEN or (texts is not None and current is None)),
        details=details if isinstance(details, dict) else {},
    )


def trace_view(trace: RetrievalTrace) -> dict[str, Any]:
    """The saved trace plus a datetime, the budget share and each hit's score explained, for the
    trace template (which reads the stored keys)."""
    tokens = trace.tokens
    mode = trace.mode or "hybrid"
    weights = trace.weights or None

    def explained(hits: list[TraceHit]) -> list[dict[str, Any]]:
        return [
            {
                **hit.as_dict(),
                "explained": explain_score(score=hit.scores, mode=mode, weights=weights, reason=hit.reason),
            }
            for hit in hits
        ]

    return {
        **trace.as_dict(),
        "memories": explained(trace.memories),
        "dropped_for_budget": explained(trace.dropped_for_budget),
        "near_misses": explained(trace.near_misses),
        "legend": score_legend(weights=weights),
        "at_dt": as_datetime(trace.at),
        "budget": tokens.budget,
        "total_tokens": tokens.total,
        "token_parts": [
            ("System instructions", tokens.system_instructions),
            ("Memories", tokens.memories),
            ("Summary", tokens.summary),
            ("Recent messages", tokens.recent_messages),
            ("User message", tokens.user_message),
        ],
        "exact": tokens.exact,
    }
