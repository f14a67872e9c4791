"""Retention: a memory that is gone takes its words with it.

A memory goes when its TTL runs out (episodic facts, raw turns) or when its soft-delete grace
period ends. Redis drops the memory's hash by itself; the sweep here removes the rest, which would
otherwise keep the words forever:

- its history list (`hist:<id>`: every text snapshot) and access stats;
- its entries in the mutation stream (each carries the text);
- its text in retrieval traces (hit texts and a trace's query are blanked, marked `forgotten`);
- saved extraction plans and pending turns that contain it or point at it (a plan is rebuilt);
- dead letters holding its words (and every dead letter older than DEAD_LETTER_RETENTION_SECONDS);
- its id in `user:<u>:mids` and `user:<u>:trash`.

What stays is one text-free audit event per memory in the mutation stream ("expired" or
"purged": id, owner, type, version, time, actor system/retention), trimmed with the stream like
every other entry. Idempotency markers (operation key -> memory id, no text, 7 days) stay too:
removing them would let a retried extraction bring a forgotten memory back.

The chat's own transcript (working memory) is not touched: it has its own lifetime (session TTL,
or until the user deletes the chat).

Workers run the sweep every RETENTION_SWEEP_SECONDS (`run_retention_if_due`); tests call
`run_retention(now=...)`. Judged on `now`, a memory whose `expires_at` or grace period has passed
is removed by the sweep itself even if Redis has not expired the key yet.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from django.conf import settings

from core.redis_client import get_redis, on_memory_node
from memory import events, keys, streams, user_index
from memory.index import index_name
from memory.records import as_text
from memory.redaction import Forgotten, redact_trace
from memory.types import Actor, ActorKind, HistoryEvent

logger = logging.getLogger(__name__)

RETENTION_ACTOR = Actor(ActorKind.SYSTEM, "retention")
BATCH = 500

# KEYS: memory hashes; ARGV: now. Deletes those whose expires_at has passed (read atomically, so
# a TTL extended meanwhile is respected).
_EXPIRE = """
local n = 0
for _, k in ipairs(KEYS) do
  local at = tonumber(redis.call('HGET', k, 'expires_at'))
  if at and at <= tonumber(ARGV[1]) then n = n + redis.call('DEL', k) end
end
return n
"""

# KEYS: trash hashes; ARGV: now, grace. Deletes those deleted at least `grace` seconds ago.
_PURGE = """
local n = 0
for _, k in ipairs(KEYS) do
  local at = tonumber(redis.call('HGET', k, 'deleted_at'))
  if at and at + tonumber(ARGV[2]) <= tonumber(ARGV[1]) then n = n + redis.call('DEL', k) end
end
return n
"""

# KEYS: last-run key; ARGV: now, interval. 1 (and records `now`) when a sweep is due.
_CLAIM = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last + tonumber(ARGV[2]) <= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


@dataclass
class RetentionReport:
    """What one sweep removed, per key family."""

    expired: int = 0  # memories gone because their TTL ran out
    purged: int = 0  # memories gone because their grace period in the trash ended
    histories: int = 0
    access_stats: int = 0
    mutation_events: int = 0
    traces: int = 0  # retrieval traces with a text blanked
    extraction_plans: int = 0
    pending_turns: int = 0
    dead_letters: int = 0
    memory_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Gone:
    memory_id: str
    user_id: str
    kind: str  # "expired" | "purged"
    version: int
    memory_type: str
    texts: tuple[str, ...]


def run_retention_if_due(*, now: float | None = None) -> RetentionReport | None:
    """The sweep, if no worker ran it in the last RETENTION_SWEEP_SECONDS (judged on `now`)."""
    now = time.time() if now is None else now
    due = get_redis().eval(_CLAIM, 1, keys.retention_last_run(), repr(now), settings.RETENTION_SWEEP_SECONDS)
    return run_retention(now=now) if int(due) else None


def run_retention(*, now: float | None = None) -> RetentionReport:
    now = time.time() if now is None else now
    client = get_redis()
    report = RetentionReport()
    _expire_by_clock(client, now)
    _purge_by_clock(client, now)
    gone = _gone_memories(client)
    forgotten = _forgotten(gone)
    if gone:
        report.mutation_events = streams.scrub(keys.mutation_stream(), memory_ids=forgotten.memory_ids)
        for user_id in sorted({g.user_id for g in gone}):
            theirs = _forgotten([g for g in gone if g.user_id == user_id])
            report.traces += _redact_traces(client, user_id, theirs)
        report.extraction_plans, report.pending_turns = _scrub_extraction(client, forgotten)
    report.dead_letters = _scrub_dead_letters(client, forgotten, now=now)
    if gone:
        _close(client, gone, report, now=now)
    if report.memory_ids or report.dead_letters:
        logger.info("retention: %s", {k: v for k, v in report.as_dict().items() if k != "memory_ids"})
    return report


# --- What is gone ---------------------------------------------------------------------------------


def _expire_by_clock(client: redis.Redis, now: float) -> None:
    """Live memories past their expires_at (the sweep's clock may be ahead of Redis's TTLs)."""
    seen: set[str] = set()
    command = ["FT.SEARCH", index_name(), f"@expires_at:[-inf {now!r}]", "NOCONTENT", "LIMIT", 0, BATCH]
    while True:
        try:
            reply = on_memory_node(lambda node: node.execute_command(*command))
        except redis.ResponseError:  # no index yet: no memories
            return
        found = [as_text(k) for k in reply[1:]]
        fresh = [k for k in found if k not in seen]
        if not fresh:
            return
        seen.update(fresh)
        client.eval(_EXPIRE, len(fresh), *fresh, repr(now))


def _purge_by_clock(client: redis.Redis, now: float) -> None:
    grace = settings.SOFT_DELETE_GRACE_SECONDS
    for user_id in _users(client):
        ids = client.zrangebyscore(keys.user_trash(user_id), "-inf", now - grace)
        for chunk in _chunks([keys.trash(as_text(m)) for m in ids]):
            client.eval(_PURGE, len(chunk), *chunk, repr(now), grace)


def _users(client: redis.Redis) -> list[str]:
    return user_index.all_user_ids()


def _chunks(items: Sequence[str], size: int = BATCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _gone_memories(client: redis.Redis) -> list[_Gone]:
    """Memories a user had whose hash is neither live nor in the trash any more."""
    gone: list[_Gone] = []
    for user_id in _users(client):
        ids = sorted(as_text(m) for m in client.sscan_iter(keys.user_memory_ids(user_id), count=BATCH))
        for chunk in _chunks(ids):
            # One MULTI: a restore RENAMEs trash -> live between two separate reads.
            with client.pipeline(transaction=True) as pipe:
                for memory_id in chunk:
                    pipe.exists(keys.memory(memory_id), keys.trash(memory_id))
                present = pipe.execute()
            missing = [m for m, n in zip(chunk, present, strict=True) if not n]
            with client.pipeline(transaction=False) as pipe:
                for memory_id in missing:
                    pipe.lrange(keys.history(memory_id), 0, -1)
                histories = pipe.execute()
            gone += [_describe(m, user_id, h) for m, h in zip(missing, histories, strict=True)]
    return gone


def _describe(memory_id: str, user_id: str, raw_history: list[bytes]) -> _Gone:
    history = []
    for raw in raw_history:
        try:
            history.append(HistoryEvent.from_dict(json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            continue
    texts = {t for e in history for t in (e.old_text, e.new_text) if t}
    snapshots = [e.new or e.old for e in history if e.new or e.old]
    last = history[-1] if history else None
    return _Gone(
        memory_id=memory_id,
        user_id=user_id,
        kind="purged" if last and last.event == "deleted" else "expired",
        version=last.version if last else 0,
        memory_type=str((snapshots[-1] or {}).get("type", "")) if snapshots else "",
        texts=tuple(sorted(texts)),
    )


# --- Where its words still are --------------------------------------------------------------------


def _forgotten(gone: Sequence[_Gone]) -> Forgotten:
    return Forgotten(
        memory_ids=frozenset(g.memory_id for g in gone), texts=tuple(t for g in gone for t in g.texts)
    )


def _redact_traces(client: redis.Redis, user_id: str, forgotten: Forgotten) -> int:
    """The user's own traces (a search never returns another user's memories)."""
    changed = 0
    for session_id in (as_text(s) for s in client.zrange(keys.user_sessions(user_id), 0, -1)):
        traces_key = keys.session_traces(session_id)
        updates = {}
        for turn_id, raw in client.hgetall(traces_key).items():
            if not forgotten.mentioned_in(as_text(raw)):
                continue
            trace = json.loads(raw)
            if redact_trace(trace, forgotten):
                updates[turn_id] = json.dumps(trace)
        if updates:
            # HSET keeps the key's TTL: the trace still lives exactly as long as its session.
            client.hset(traces_key, mapping=updates)
            changed += len(updates)
    return changed


def _scan(client: redis.Redis, family: str) -> Iterator[tuple[str, str]]:
    for raw in client.scan_iter(match=keys.family_pattern(family), count=1000):
        redis_key = as_text(raw)
        parsed = keys.split_family_key(redis_key, family)
        if parsed and parsed[1]:
            yield redis_key, parsed[1]


def _scrub_extraction(client: redis.Redis, forgotten: Forgotten) -> tuple[int, int]:
    """Saved plans (dropped: the job makes a new one) and pending turns that hold the words."""
    plans = turns = 0
    for redis_key, part in _scan(client, "extract"):
        if part.startswith("plan:"):
            raw = client.get(redis_key)
            if raw is not None and forgotten.mentioned_in(as_text(raw)):
                plans += int(client.delete(redis_key))
        elif part == "turns":
            stale = [f for f, v in client.hgetall(redis_key).items() if forgotten.mentioned_in(as_text(v))]
            if stale:
                turns += int(client.hdel(redis_key, *stale))
    return plans, turns


def _scrub_dead_letters(client: redis.Redis, forgotten: Forgotten, *, now: float) -> int:
    keep = settings.DEAD_LETTER_RETENTION_SECONDS
    doomed = []
    for entry_id, fields in client.xrange(keys.dead_letter_stream()):
        failed_at = float(fields.get(b"failed_at") or 0)
        too_old = keep is not None and failed_at + keep <= now
        if too_old or forgotten.mentioned_in(as_text(fields.get(b"turns"))):
            doomed.append(entry_id)
    return int(client.xdel(keys.dead_letter_stream(), *doomed)) if doomed else 0


def _close(client: redis.Redis, gone: list[_Gone], report: RetentionReport, *, now: float) -> None:
    """Last, in one transaction per memory: a sweep that stops half-way finds it again next time."""
    tombstones = []
    for item in gone:
        tombstone = events.memory_forgotten(
            memory_id=item.memory_id,
            user_id=item.user_id,
            kind=item.kind,
            version=item.version,
            memory_type=item.memory_type,
            actor=RETENTION_ACTOR,
            at=now,
        )
        with client.pipeline(transaction=True) as pipe:
            pipe.delete(keys.history(item.memory_id))
            pipe.delete(keys.memory_stats(item.memory_id))
            pipe.srem(keys.user_memory_ids(item.user_id), item.memory_id)
            pipe.zrem(keys.user_trash(item.user_id), item.memory_id)
            payload = json.dumps(tombstone)
            events.append_to_stream(pipe, payload=payload, user_id=item.user_id, event=item.kind)
            histories, stats, *_ = pipe.execute()
        report.histories += int(histories)
        report.access_stats += int(stats)
        setattr(report, item.kind, getattr(report, item.kind) + 1)
        report.memory_ids.append(item.memory_id)
        tombstones.append(tombstone)
    events.publish(tombstones)
