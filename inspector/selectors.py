"""Reads the inspector needs beyond memory.selectors: global totals, the overview's user rows,
recent feed entries, and the per-user export. Read-only; every key comes from memory.keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.health import system_status
from core.redis_client import get_redis
from inspector.presenters import FeedEntry, as_datetime, feed_entry
from memory import keys, user_index, working
from memory.extraction.queue import queue_health
from memory.index import index_state
from memory.selectors import (
    counts_by_type,
    named_memory_texts,
)
from memory.types import MemoryType

TYPE_ORDER = [t.value for t in MemoryType]


@dataclass(frozen=True)
class UserRow:
    user_id: str
    last_activity: float
    counts: dict[str, int]
    sessions: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def last_activity_at(self) -> datetime | None:
        return as_datetime(self.last_activity)

    @property
    def ordered_counts(self) -> list[tuple[str, int]]:
        return [(t, self.counts.get(t, 0)) for t in TYPE_ORDER]


@dataclass(frozen=True)
class Totals:
    users: int
    by_type: dict[str, int]
    sessions_approx: int

    @property
    def memories(self) -> int:
        return sum(self.by_type.values())

    @property
    def ordered_counts(self) -> list[tuple[str, int]]:
        return [(t, self.by_type.get(t, 0)) for t in TYPE_ORDER]


def totals() -> Totals:
    client = get_redis()
    users = user_index.count()
    # Session totals: one ZCARD per known user in a single round trip. Expired sessions stay in a
    # user's list until something reads it (working.session_ids_for_user prunes), hence "approx".
    sessions = 0
    all_users = user_index.all_user_ids()
    if all_users:
        with client.pipeline(transaction=False) as pipe:
            for user_id in all_users:
                pipe.zcard(keys.user_sessions(user_id))
            sessions = sum(int(n) for n in pipe.execute())
    return Totals(users=users, by_type=counts_by_type(user_id=None), sessions_approx=sessions)


def user_rows(*, users: list[tuple[str, float]]) -> list[UserRow]:
    """Counts per type and live sessions for (user id, last activity) pairs from known_users()."""
    return [
        UserRow(
            user_id=user_id,
            last_activity=last,
            counts=counts_by_type(user_id=user_id),
            sessions=working.session_count(user_id=user_id),
        )
        for user_id, last in users
    ]


def user_known(*, user_id: str) -> bool:
    """Has Engram anything under this exact id (memories, sessions, or an entry in the users list)?"""
    client = get_redis()
    return user_index.last_activity(user_id=user_id) is not None or bool(
        client.exists(keys.user_memory_ids(user_id))
    )


def last_activity(*, user_id: str) -> float | None:
    return user_index.last_activity(user_id=user_id)


@dataclass(frozen=True)
class SessionsPage:
    """One page of a user's live sessions, newest first."""

    sessions: list[working.Session]
    total: int
    number: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def sessions_page(*, user_id: str, number: int, per_page: int) -> SessionsPage:
    """Reads only the sessions of the page (a busy user has hundreds)."""
    ids = working.session_ids_for_user(user_id=user_id)
    number = max(1, min(number, max(1, -(-len(ids) // per_page))))
    chosen = ids[(number - 1) * per_page : number * per_page]
    sessions = [s for s in (working.get_session(session_id=i) for i in chosen) if s is not None]
    return SessionsPage(sessions=sessions, total=len(ids), number=number, per_page=per_page)


def feed_entries(events: list[dict[str, Any]]) -> list[FeedEntry]:
    """Feed lines for events, naming by its text the memory of an event that carries none."""
    texts = named_memory_texts(events)
    return [feed_entry(e, texts=texts) for e in events]


def status_report() -> dict[str, Any]:
    """The staff status page: core's view of Redis, workers and providers, plus the memory index
    and the extraction queue (both need Redis, so they are left out while it does not answer)."""
    report = system_status()
    reachable = bool(report["redis"]["reachable"])
    report["index"] = index_state() if reachable else None
    report["extraction"] = queue_health() if reachable else None
    return report
