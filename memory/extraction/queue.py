"""The extraction work queue on a Redis stream, consumed by a consumer group.

Each finished turn is stored in its session's pending-turn hash under a per-session sequence
number and announced on the turn stream (atomically, in one script). A worker that sees an entry
for a session takes the session's lock, processes *all* pending turns of that session from the
applied cursor on (so a burst is extracted once and turns apply in order), commits the cursor and
acknowledges. Entries at or below the cursor are duplicates and are simply acknowledged.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from redis.client import Pipeline

from core.redis_client import REDIS_UNREACHABLE, get_redis
from core.text import loads as stored_json
from memory import keys
from memory.extraction.types import ExtractionPlan, PlanError, TurnMessage
from memory.lease import fenced, mirror_ms, release
from memory.query import validate_scope_id
from memory.records import as_text
from memory.types import Lease

logger = logging.getLogger(__name__)

GROUP = keys.TURN_GROUP
STATE_TTL_SECONDS = 30 * 24 * 3600

# KEYS: seq, turns, last_at (one session: one cluster slot); ARGV: payload, at, state ttl.
# The turn is stored first; its announcement on the turn stream (another slot) follows. A turn
# stored but never announced (the process died in between) is announced by the session's next
# turn (a worker takes every pending turn of a session) or by `announce_stranded`.
_STORE = """
local seq = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], seq, ARGV[1])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return seq
"""

# KEYS: lock; ARGV: the value it was seen holding ('' = free), token, ms. Takes the lock only if
# it still holds what `acquire_lock` judged (compare and set): the worker lives it was judged by
# sit in another cluster slot, so they cannot be read in here.
_TAKE = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# KEYS: stream; ARGV: group, idle ms, keep. Removes consumers with no pending entries that have not
# been seen for `idle ms` (a dead worker's name). In one script: a consumer that read an entry since
# would lose it from the group's pending list if removed.
_REMOVE_IDLE_CONSUMERS = """
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['name'] ~= ARGV[3] and tonumber(info['pending']) == 0
     and tonumber(info['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    table.insert(removed, info['name'])
  end
end
return removed
"""


@dataclass(frozen=True)
class QueuedTurn:
    seq: int
    turn_id: str
    user_id: str
    session_id: str
    agent_id: str
    namespace: str
    strategy: str
    messages: list[TurnMessage]

    def as_json(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "turn_id": self.turn_id,
                "user_id": self.user_id,
                "session_id": self.session_id,
                "agent_id": self.agent_id,
                "namespace": self.namespace,
                "strategy": self.strategy,
                "messages": [
                    {"role": m.role, "content": m.content, "at": m.at, "turn_id": m.turn_id}
                    for m in self.messages
                ],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str, *, seq: int | None = None) -> QueuedTurn:
        data = stored_json(raw)
        return cls(
            seq=int(seq if seq is not None else data.get("seq", 0)),
            turn_id=data["turn_id"],
            user_id=data["user_id"],
            session_id=data["session_id"],
            agent_id=data.get("agent_id", "engram"),
            namespace=data.get("namespace", "default"),
            strategy=data.get("strategy", ""),
            messages=[TurnMessage(**m) for m in data["messages"]],
        )


@dataclass(frozen=True)
class StreamEntry:
    """An announcement as read from `stream`: it is acknowledged there, whatever stream its
    session maps to now (TURN_STREAM_SHARDS may have been raised since)."""

    id: str
    stream: str
    session_id: str
    user_id: str
    seq: int
    at: float


def ensure_group(client: redis.Redis | None = None) -> None:
    client = client or get_redis()
    for stream in keys.turn_streams():
        try:
            client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def enqueue_turn(
    *,
    user_id: str,
    session_id: str,
    turn_id: str,
    messages: Sequence[TurnMessage],
    agent_id: str = "engram",
    namespace: str = "default",
    strategy: str = "",
) -> tuple[int, str]:
    """Queue a finished turn for extraction. Returns (sequence number in the session, stream id)."""
    for name, value in (
        ("user_id", user_id),
        ("session_id", session_id),
        ("agent_id", agent_id),
        ("namespace", namespace),
    ):
        validate_scope_id(value, name=name)
    at = max((m.at for m in messages), default=time.time())
    turn = QueuedTurn(0, turn_id, user_id, session_id, agent_id, namespace, strategy, list(messages))
    client = get_redis()
    seq = int(
        client.eval(
            _STORE,
            3,
            keys.extraction(session_id, "seq"),
            keys.extraction(session_id, "turns"),
            keys.extraction(session_id, "last_at"),
            turn.as_json(),
            repr(at),
            STATE_TTL_SECONDS,
        )
    )
    return seq, announce(session_id=session_id, user_id=user_id, seq=seq, at=at)


def announce(*, session_id: str, user_id: str, seq: int, at: float) -> str:
    """Tell the workers the session has turns up to `seq`. Safe to repeat: an entry at or below
    the session's cursor is a duplicate, acknowledged and skipped."""
    stream_id = get_redis().xadd(
        keys.turn_stream_of(session_id),
        {"session_id": session_id, "user_id": user_id, "seq": seq, "at": repr(at)},
        maxlen=settings.TURN_STREAM_MAXLEN,
        approximate=True,
    )
    return as_text(stream_id)


def announce_stranded(*, older_than: float, now: float | None = None) -> int:
    """Announce again the sessions whose stored turns no entry names (their process died between
    storing a turn and announcing it): pending turns, no retry scheduled, no failure counted, and
    the last turn older than `older_than` seconds. Returns how many were announced."""
    client = get_redis()
    now = now or time.time()
    announced = 0
    for raw in client.scan_iter(match=keys.extraction("*", "turns"), count=1000):
        parsed = keys.split_family_key(as_text(raw), "extract")
        if parsed is None or parsed[1] != "turns":
            continue
        try:
            announced += _announce_if_stranded(client, session_id=parsed[0], older_than=older_than, now=now)
        except REDIS_UNREACHABLE:
            raise  # the worker's outage handling, not one session's problem
        except Exception:  # one session's unreadable state must not stop the sweep (nor the worker)
            logger.warning("could not check session %s for stranded turns", parsed[0], exc_info=True)
    bump("reannounced", announced)
    return announced


def _announce_if_stranded(client: redis.Redis, *, session_id: str, older_than: float, now: float) -> bool:
    with client.pipeline(transaction=False) as pipe:
        pipe.hkeys(keys.extraction(session_id, "turns"))
        pipe.get(keys.extraction(session_id, "cursor"))
        pipe.get(keys.extraction(session_id, "last_at"))
        pipe.exists(keys.extraction(session_id, "retry_at"), keys.extraction(session_id, "failures"))
        seqs, cursor_raw, last_raw, troubled = pipe.execute()
    waiting = [int(s) for s in seqs if int(s) > int(cursor_raw or 0)]
    last_at = float(last_raw or 0)
    if not waiting or troubled or now - last_at < older_than:
        return False
    stored = client.hget(keys.extraction(session_id, "turns"), max(waiting))
    if not stored:
        return False  # committed since the read above: nothing stranded
    turn = QueuedTurn.from_json(stored)
    announce(session_id=session_id, user_id=turn.user_id, seq=max(waiting), at=last_at)
    return True


def _entry(stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> StreamEntry:
    return StreamEntry(
        id=entry_id.decode(),
        stream=stream,
        session_id=fields[b"session_id"].decode(),
        user_id=fields[b"user_id"].decode(),
        seq=int(fields[b"seq"]),
        at=float(fields[b"at"]),
    )


def read_entries(*, consumer: str, block_ms: int, count: int = 50) -> list[StreamEntry]:
    """This consumer's own pending entries (waiting for debounce or a retry) plus new ones."""
    client = get_redis()
    entries: list[StreamEntry] = []
    streams = keys.turn_streams()
    # One stream per call (a cluster serves no multi-slot XREADGROUP): all without waiting first,
    # then, when nothing came, a wait shared between them.
    rounds: list[tuple[str, str, int | None]] = [(s, start, None) for start in ("0", ">") for s in streams]
    rounds += [(stream, ">", max(1, block_ms // len(streams))) for stream in streams]
    for stream, start, block in rounds:
        if block is not None and entries:
            break
        try:
            reply = client.xreadgroup(GROUP, consumer, {stream: start}, count=count, block=block)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream or group is gone (a flushed or fresh Redis): recreate it and read next round.
            ensure_group(client)
            return entries
        for _, items in reply or []:
            entries += [_entry(stream, entry_id, fields) for entry_id, fields in items if fields]
    return entries


def reclaim_stale(*, consumer: str, count: int = 100) -> list[StreamEntry]:
    """Take over entries that another (dead or stuck) consumer held for too long.

    Not a failure: the previous worker was killed or stopped, nothing says the turns are at fault
    (a turn is dead-lettered only after EXTRACTION_MAX_DELIVERIES attempts that ran and failed,
    counted by `record_failure`). The stream's own delivery count is not used for the same reason.
    """
    client = get_redis()
    idle_ms = int(settings.EXTRACTION_RECLAIM_IDLE_SECONDS * 1000)
    claimed: list[StreamEntry] = []
    for stream in keys.turn_streams():
        try:
            reply = client.xautoclaim(stream, GROUP, consumer, idle_ms, start_id="0-0", count=count)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            ensure_group(client)
            return claimed
        claimed += [_entry(stream, entry_id, fields) for entry_id, fields in reply[1] if fields]
    bump("reclaimed", len(claimed))
    return claimed


def remove_idle_consumers(*, idle_seconds: float, keep: str) -> list[str]:
    """Drop consumers of the group that hold nothing and were not seen for `idle_seconds`.

    Dead workers' names would pile up otherwise (one per crash with pid names). Removing a live but
    idle one is harmless: it holds nothing, and its next read creates it again."""
    removed: list[str] = []
    for stream in keys.turn_streams():
        try:
            names = get_redis().eval(_REMOVE_IDLE_CONSUMERS, 1, stream, GROUP, int(idle_seconds * 1000), keep)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc) and "no such key" not in str(exc):
                raise
            continue
        removed += [as_text(name) for name in names]
    return sorted(set(removed))


def register_life(*, worker_id: str, life: str) -> None:
    """A worker (re)starting under its name: locks its earlier lives held are free from now on."""
    get_redis().hset(keys.worker_lives(), worker_id, life)


def acquire_lock(session_id: str, *, owner: str = "", life: str = "") -> str | None:
    """The session's extraction lock, or None when another live job holds it.

    A lock held under this worker's own name is taken back at once (this worker's earlier job,
    killed with the process or cut off by a Redis outage), and so is one held by an earlier life
    of another worker (`register_life`): either would otherwise block the session until it
    expires. Should two live processes share a name, the fenced writes (`memory.lease`) still
    let only the newer holder write."""
    token = f"{owner}|{life}|{uuid.uuid4().hex}" if owner else uuid.uuid4().hex
    ms = int(settings.EXTRACTION_LOCK_SECONDS * 1000)
    client = get_redis()
    lock_key = keys.extraction_lock(session_id)
    held = client.get(lock_key)
    if held is not None and not _may_take(client, as_text(held), owner=owner):
        return None
    if not client.eval(_TAKE, 1, lock_key, as_text(held) if held is not None else "", token, ms):
        return None
    # The memory writes check the lock's mirror (memory.lease): set it, then make sure the lock
    # is still ours. A take-over in between either overwrites the mirror after us or is seen here.
    client.set(keys.extraction_lock_mirror(session_id), token, px=mirror_ms(ms))
    if client.get(lock_key) != token.encode():
        release([lock_key], token)
        return None
    return token


def _may_take(client: redis.Redis, held: str, *, owner: str) -> bool:
    """A held lock is free to this worker when it is held under its own name (an earlier job of
    this worker, cut off by a Redis outage or a kill: a worker runs one job at a time), or by a
    life of another worker that has since restarted (its holder is dead). Tokens are
    "<owner>|<life>|<nonce>"; a plain token (an erase, a login) is never taken."""
    parts = held.rsplit("|", 2)
    if len(parts) != 3 or not owner:
        return False
    holder, life = parts[0], parts[1]
    if holder == owner:
        return True
    current = client.hget(keys.worker_lives(), holder)
    return current is not None and as_text(current) != life


def release_lock(session_id: str, token: str) -> None:
    release([keys.extraction_lock(session_id)], token)


def lease(session_id: str, token: str) -> Lease:
    """The session lock as held by `token`: the job's writes pass it so a takeover stops them."""
    return Lease(keys.extraction_lock(session_id), token)


def cursor(session_id: str) -> int:
    raw = get_redis().get(keys.extraction(session_id, "cursor"))
    return int(raw) if raw else 0


def pending_turns(session_id: str, *, after: int) -> list[QueuedTurn]:
    """Every queued turn of the session with seq > after, in order."""
    raw = get_redis().hgetall(keys.extraction(session_id, "turns"))
    turns = [QueuedTurn.from_json(v, seq=int(k)) for k, v in raw.items() if int(k) > after]
    return sorted(turns, key=lambda t: t.seq)


def commit(
    *, session_id: str, to_seq: int, from_seq: int, entries: Sequence[StreamEntry], lease: Lease | None = None
) -> None:
    """The turns up to `to_seq` are applied: move the cursor, drop them, acknowledge our entries."""
    with fenced(lease) as pipe:
        commit_on(pipe, session_id=session_id, to_seq=to_seq, from_seq=from_seq, entries=entries)
    ack(entries, session_id=session_id)


def commit_on(
    pipe: Pipeline, *, session_id: str, to_seq: int, from_seq: int, entries: Sequence[StreamEntry]
) -> None:
    """Queue the commit of the session's own state (one slot). The caller acknowledges the
    entries after EXEC (`ack`): killed in between, they are redelivered, and entries at or below
    the new cursor are duplicates that are simply acknowledged."""
    pipe.set(keys.extraction(session_id, "cursor"), to_seq, ex=STATE_TTL_SECONDS)
    pipe.hdel(keys.extraction(session_id, "turns"), *[str(s) for s in range(from_seq, to_seq + 1)])
    pipe.delete(keys.extraction(session_id, f"plan:{from_seq}"))
    pipe.delete(keys.extraction(session_id, "retry_at"))
    if entries:
        pipe.hdel(keys.extraction(session_id, "failures"), *[e.id for e in entries])


def ack(entries: Sequence[StreamEntry], *, session_id: str) -> None:
    """Acknowledge the entries (each on the stream it was read from), then forget their failure
    counts: an entry whose count is gone first could be counted afresh after a redelivery."""
    if not entries:
        return
    client = get_redis()
    by_stream: dict[str, list[str]] = {}
    for entry in entries:
        by_stream.setdefault(entry.stream, []).append(entry.id)
    for stream, entry_ids in by_stream.items():
        client.xack(stream, GROUP, *entry_ids)
    client.hdel(keys.extraction(session_id, "failures"), *[e.id for e in entries])


def failures(session_id: str, entry_ids: Sequence[str]) -> int:
    if not entry_ids:
        return 0
    values = get_redis().hmget(keys.extraction(session_id, "failures"), list(entry_ids))
    return max(int(v or 0) for v in values)


def record_failure(session_id: str, entry_ids: Sequence[str], *, lease: Lease | None = None) -> int:
    """Count a failed attempt on each entry and schedule the next try with exponential backoff."""
    attempt = failures(session_id, entry_ids) + 1
    delay = settings.EXTRACTION_RETRY_BACKOFF_SECONDS * (2 ** (attempt - 1))
    with fenced(lease) as pipe:
        for entry_id in entry_ids:
            pipe.hincrby(keys.extraction(session_id, "failures"), entry_id, 1)
        pipe.set(keys.extraction(session_id, "retry_at"), repr(time.time() + delay), ex=STATE_TTL_SECONDS)
    return int(attempt)


def retry_at(session_id: str) -> float:
    raw = get_redis().get(keys.extraction(session_id, "retry_at"))
    return float(raw) if raw else 0.0


def last_turn_at(session_id: str) -> float:
    raw = get_redis().get(keys.extraction(session_id, "last_at"))
    return float(raw) if raw else 0.0


def load_plan(session_id: str, from_seq: int) -> ExtractionPlan | None:
    """The saved plan, or None; PlanError when what is saved is not a plan this worker reads."""
    raw = get_redis().get(keys.extraction(session_id, f"plan:{from_seq}"))
    if not raw:
        return None
    try:
        data = stored_json(raw)
    except ValueError as exc:
        raise PlanError(f"plan: not JSON ({exc})") from exc
    return ExtractionPlan.from_dict(data)


def save_plan(session_id: str, from_seq: int, plan: ExtractionPlan, *, lease: Lease | None = None) -> None:
    """Kept until the turns are committed, so a worker that takes over applies the same decisions."""
    with fenced(lease) as pipe:
        pipe.set(
            keys.extraction(session_id, f"plan:{from_seq}"), json.dumps(plan.as_dict()), ex=STATE_TTL_SECONDS
        )


# --- Operations view ------------------------------------------------------------------------------


def queue_health() -> dict[str, Any]:
    """Pending, lag, oldest pending age, per-consumer state, dead letters and outcome counters."""
    client = get_redis()
    ensure_group(client)
    pending = lag = length = 0
    oldest_age = 0.0
    by_name: dict[str, dict[str, int]] = {}
    for stream in keys.turn_streams():
        group = next(g for g in client.xinfo_groups(stream) if g["name"] == GROUP.encode())
        summary = client.xpending(stream, GROUP)
        pending += int(summary["pending"])
        lag += int(group.get("lag") or 0)
        length += int(client.xlen(stream))
        if summary["pending"]:
            oldest_ms = int(summary["min"].decode().split("-")[0])
            oldest_age = max(oldest_age, time.time() - oldest_ms / 1000)
        for c in client.xinfo_consumers(stream, GROUP):
            row = by_name.setdefault(c["name"].decode(), {"pending": 0, "idle_ms": -1, "inactive_ms": -1})
            row["pending"] += int(c["pending"])
            # The most recent sighting on any shard: idle/inactive are "since", so the smallest.
            for field, value in (("idle_ms", int(c["idle"])), ("inactive_ms", int(c.get("inactive", -1)))):
                row[field] = value if row[field] < 0 else min(row[field], value)
    consumers = [{"name": name, **row} for name, row in by_name.items()]
    stats = {k.decode(): int(v) for k, v in client.hgetall(keys.extraction_stats()).items()}
    return {
        "pending": pending,
        "lag": lag,
        "oldest_pending_age_s": round(oldest_age, 1),
        "consumers": consumers,
        "dead_letters": int(client.xlen(keys.dead_letter_stream())),
        "stream_length": length,
        "counters": stats,
    }


def bump(counter: str, amount: int = 1) -> None:
    if amount:
        get_redis().hincrby(keys.extraction_stats(), counter, amount)
