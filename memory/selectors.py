"""Reads from memory by id and by list: fetch, history, lists, counts and dedup candidates.

Search with scores is memory/search.py; both only read (writes are memory/services.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from django.conf import settings

from core.embeddings import get_embedder
from core.redis_client import get_memory_redis, get_redis
from core.text import loads as stored_json
from memory import events, keys, user_index
from memory.access import Owner
from memory.index import ensure_index, index_name
from memory.query import MAX_ID_LENGTH, MemoryFilter, tag_clause, validate_id, validate_scope_id
from memory.raw_search import Row, ft_search_args, run_pipeline, run_search
from memory.records import RETURN_FIELDS, as_text, content_hash, from_hash, ttl_or_none, vector_bytes
from memory.types import HistoryEvent, InvalidInput, Memory, MemoryNotFound

logger = logging.getLogger(__name__)


def get_memory(*, memory_id: str, owner: Owner, include_deleted: bool = True) -> Memory:
    """One memory (live, or in the trash with `include_deleted`); MemoryNotFound when it is not `owner`'s."""
    memory_id = validate_id(memory_id, name="memory_id")
    client = get_redis()
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.memory(memory_id))
        pipe.ttl(keys.memory(memory_id))
        pipe.hgetall(keys.memory_stats(memory_id))
        raw, ttl, stats = pipe.execute()
    if raw:
        return owner.require(from_hash({**raw, **stats}, ttl_seconds=ttl_or_none(ttl)))
    if include_deleted:
        trashed = client.hgetall(keys.trash(memory_id))
        if trashed:
            return owner.require(
                from_hash(trashed, ttl_seconds=ttl_or_none(client.ttl(keys.trash(memory_id))), deleted=True)
            )
    raise MemoryNotFound(f"no memory {memory_id}")


def memory_ttl(*, memory_id: str, owner: Owner) -> int | None:
    """Seconds left, or None when the memory does not expire. Raises if it does not exist."""
    return get_memory(memory_id=memory_id, owner=owner, include_deleted=False).ttl_seconds


def memory_history(*, memory_id: str) -> list[HistoryEvent]:
    memory_id = validate_id(memory_id, name="memory_id")
    history = histories(memory_ids=[memory_id])[memory_id]
    return [HistoryEvent.from_dict(item) for item in history]


def histories(*, memory_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each memory's history entries (as stored: dicts), oldest first; two round trips at most.

    A memory made without a TTL has no history list until it first changes: its one "added"
    entry is rebuilt from its hash (memory.events.added_entry). An id with neither has []."""
    client = get_redis()
    with client.pipeline(transaction=False) as pipe:
        for memory_id in memory_ids:
            pipe.lrange(keys.history(memory_id), 0, -1)
        lists = pipe.execute()
    out = {m: _readable(raw) for m, raw in zip(memory_ids, lists, strict=True)}
    unreadable = sorted({m for m, raw in zip(memory_ids, lists, strict=True) if len(out[m]) < len(raw)})
    if unreadable:  # once per read, naming every memory (the feed prefill reads many at once)
        logger.warning("history: skipped unreadable entries of %s", ", ".join(unreadable))
    unlisted = [m for m in dict.fromkeys(memory_ids) if not out[m]]
    out.update(_added_entries(client, unlisted))
    return out


def _readable(raw: Sequence[bytes]) -> list[dict[str, Any]]:
    """The history items that parse as events; one unreadable item must not hide the others (nor
    break the inspector's feed prefill)."""
    out: list[dict[str, Any]] = []
    for item in raw:
        try:
            event = stored_json(item)
        except ValueError:
            continue
        if isinstance(event, dict):
            out.append(event)
    return out


def _added_entries(client: redis.Redis, memory_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The rebuilt "added" entry of each of these memories without a history list ([] when the
    memory is not live: a deleted one always has its list)."""
    if not memory_ids:
        return {}
    with client.pipeline(transaction=False) as pipe:
        for memory_id in memory_ids:
            pipe.hgetall(keys.memory(memory_id))
        hashes = pipe.execute()
    return {
        m: [events.added_entry(from_hash(raw), raw).as_dict()] if raw else []
        for m, raw in zip(memory_ids, hashes, strict=True)
    }


@dataclass(frozen=True)
class HistoryPage:
    events: list[HistoryEvent]
    next_start: int | None  # where the next page starts; None after the last event


MAX_HISTORY_PAGE = 500


def memory_history_page(*, memory_id: str, owner: Owner, start: int = 0, limit: int = 50) -> HistoryPage:
    """A page of one memory's history, oldest first, from position `start`; MemoryNotFound when the
    memory (live or in the trash) is not `owner`'s. The list only ever grows at its end, so a
    position stays a stable place to continue from."""
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise InvalidInput("the history position must be a whole number >= 0")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_HISTORY_PAGE:
        raise InvalidInput(f"limit must be 1..{MAX_HISTORY_PAGE}")
    get_memory(memory_id=memory_id, owner=owner, include_deleted=True)
    client = get_redis()
    # One more than asked: whether a next page exists, without a second round trip.
    raw: list[Any] = client.lrange(keys.history(memory_id), start, start + limit)
    if not raw and start == 0:  # no list at all (Redis has no empty lists)
        raw = _added_entries(client, [memory_id])[memory_id]
    found = [item if isinstance(item, dict) else stored_json(item) for item in raw]
    events = [HistoryEvent.from_dict(item) for item in found[:limit]]
    return HistoryPage(events=events, next_start=start + limit if len(raw) > limit else None)


def last_deletion(*, memory_id: str) -> HistoryEvent | None:
    """Who deleted a memory and when (the newest delete in its history); None if never deleted."""
    return events.last_deletion(memory_history(memory_id=memory_id))


def last_deletions(*, memory_ids: Sequence[str]) -> dict[str, HistoryEvent | None]:
    """`last_deletion` of each memory, in one round trip."""
    ids = [validate_id(memory_id, name="memory_id") for memory_id in memory_ids]
    with get_redis().pipeline(transaction=False) as pipe:
        for memory_id in ids:
            pipe.lrange(keys.history(memory_id), 0, -1)
        histories = pipe.execute()
    return {
        memory_id: events.last_deletion([HistoryEvent.from_dict(stored_json(item)) for item in raw])
        for memory_id, raw in zip(ids, histories, strict=True)
    }


def recent_events(*, user_id: str = "", limit: int = 10, scan: int = 300) -> list[dict[str, Any]]:
    """The newest mutation events (optionally of one user) from the audit stream, newest first.

    Only the last `scan` entries are looked at: this prefills the live feed panel, it is not a
    search over all history. Most entries point at their memory's history entry
    (memory.events.record): those are read from the history lists, one round trip per batch.
    """
    try:
        entries = get_redis().xrevrange(keys.mutation_stream(), count=scan)
    except redis.ResponseError:
        return []
    target = user_id.encode()
    wanted = [fields for _entry_id, fields in entries if not user_id or fields.get(b"user_id") == target]
    found: list[dict[str, Any]] = []
    position = 0
    while position < len(wanted) and len(found) < limit:
        batch = wanted[position : position + limit - len(found)]
        position += len(batch)
        found.extend(audit_events(batch))
    return found


def audit_events(entries: Sequence[Mapping[bytes, bytes]]) -> list[dict[str, Any]]:
    """The events of these mutation-stream entries (their fields), in order; an entry whose event
    is gone (its history purged) or unreadable is left out."""
    pointed = sorted({as_text(f[b"memory_id"]) for f in entries if b"data" not in f and b"memory_id" in f})
    found = histories(memory_ids=pointed) if pointed else {}
    out: list[dict[str, Any]] = []
    for fields in entries:
        try:
            if b"data" in fields:
                out.append(stored_json(fields[b"data"]))
                continue
            at, name = float(fields[b"at"]), as_text(fields[b"event"])
            history = found.get(as_text(fields[b"memory_id"]), [])
        except (KeyError, ValueError):
            continue
        match = next((e for e in reversed(history) if e.get("at") == at and e.get("event") == name), None)
        if match is not None:
            out.append(match)
    return out


def event_text(data: dict[str, Any]) -> str:
    """The memory text an event carries itself (its snapshots, or the text a refusal proposed)."""
    new, old = data.get("new") or {}, data.get("old") or {}
    details = data.get("details") or {}
    new, old = (new if isinstance(new, dict) else {}), (old if isinstance(old, dict) else {})
    details = details if isinstance(details, dict) else {}
    return str(new.get("text") or old.get("text") or details.get("proposed_text") or "")


def memory_texts(*, memory_ids: list[str]) -> dict[str, str | None]:
    """The text of each memory now, live or in the trash; None when it is gone. One round trip."""
    ids = list(dict.fromkeys(i for i in memory_ids if i))
    if not ids:
        return {}
    with get_redis().pipeline(transaction=False) as pipe:
        for memory_id in ids:
            pipe.hget(keys.memory(memory_id), "text")
            pipe.hget(keys.trash(memory_id), "text")
        try:
            replies = pipe.execute(raise_on_error=False)
        except redis.ResponseError:
            replies = [None] * (2 * len(ids))
    texts: dict[str, str | None] = {}
    for n, memory_id in enumerate(ids):
        raw = next((r for r in replies[2 * n : 2 * n + 2] if isinstance(r, bytes)), None)
        texts[memory_id] = raw.decode("utf-8", "replace") if raw is not None else None
    return texts


def named_memory_texts(events: list[dict[str, Any]]) -> dict[str, str | None]:
    """For events that carry no text (TTL, pin, lock, identity move): the text of the memory each
    names, now (None when it is gone). What the inspector feed and the chat's demo panel show."""
    wanted = [str(e.get("memory_id") or "") for e in events if not event_text(e) and e.get("memory_id")]
    return memory_texts(memory_ids=wanted)


def deleted_memories(*, user_id: str, limit: int | None = None) -> list[Memory]:
    """A user's soft-deleted memories still inside the grace period, newest deletion first (the
    newest `limit` deletions only, when given)."""
    client = get_redis()
    memories = []
    last = -1 if limit is None else max(0, limit - 1)
    for raw_id in client.zrevrange(keys.user_trash(validate_id(user_id, name="user_id")), 0, last):
        memory_id = raw_id.decode()
        raw = client.hgetall(keys.trash(memory_id))
        if raw:
            memories.append(
                from_hash(raw, ttl_seconds=ttl_or_none(client.ttl(keys.trash(memory_id))), deleted=True)
            )
        else:
            client.zrem(keys.user_trash(user_id), memory_id)
    return memories


# --- Lists and counts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryPage:
    memories: list[Memory]
    total: int
    offset: int
    limit: int


def list_memories(
    *,
    filter: MemoryFilter,
    offset: int = 0,
    limit: int = 50,
    sort_by: str = "updated_at",
    descending: bool = True,
) -> MemoryPage:
    """A page of a user's memories (inspector tables)."""
    if sort_by not in {"updated_at", "created_at", "event_date"}:
        raise InvalidInput("sort_by must be updated_at, created_at or event_date")
    if not (0 <= offset <= 100_000 and 1 <= limit <= 500):
        raise InvalidInput("offset must be 0..100000 and limit 1..500")
    ensure_index()
    now = time.time()
    total, rows = run_search(
        ft_search_args(
            filter.query(now=now), limit=limit, offset=offset, sort_by=sort_by, descending=descending
        )
    )
    ttls = _ttls([row.key for row in rows])
    memories = [from_hash(row.fields, ttl_seconds=ttl) for row, ttl in zip(rows, ttls, strict=True)]
    return MemoryPage(memories=memories, total=total, offset=offset, limit=limit)


def _ttls(redis_keys: list[str]) -> list[int | None]:
    if not redis_keys:
        return []
    with get_redis().pipeline(transaction=False) as pipe:
        for key in redis_keys:
            pipe.ttl(key)
        return [ttl_or_none(t) for t in pipe.execute()]


def counts_by_type(*, user_id: str | None, filter: MemoryFilter | None = None) -> dict[str, int]:
    """Live memories per type, of one user or (user_id=None) of everyone, from the index (no key scan).

    With `filter` (an API key's confinement, say) only what it matches is counted; its user wins."""
    ensure_index()
    if filter is not None:
        query = filter.query(now=time.time())
    else:
        # Expired keys can linger until Redis' expiry cycle reaches them; never count them.
        query = f"-@expires_at:[-inf {time.time()!r}]"
        if user_id is not None:
            query = f"{tag_clause('user_id', [validate_scope_id(user_id, name='user_id')])} {query}"
    reply = get_memory_redis().execute_command(
        "FT.AGGREGATE",
        index_name(),
        query,
        "GROUPBY",
        1,
        "@type",
        "REDUCE",
        "COUNT",
        0,
        "AS",
        "n",
        "DIALECT",
        2,
    )
    counts: dict[str, int] = {}
    for row in reply[1:]:
        data = dict(zip(row[::2], row[1::2], strict=False))
        counts[data[b"type"].decode()] = int(data[b"n"])
    return counts


def access_stats(*, memory_ids: Sequence[str]) -> dict[str, tuple[int, float]]:
    """(access count, last access) of each memory that was ever used in a prompt."""
    if not memory_ids:
        return {}
    replies = run_pipeline(
        [["HMGET", keys.memory_stats(m), "access_count", "last_accessed_at"] for m in memory_ids]
    )
    return {
        memory_id: (int(count or 0), float(last or 0))
        for memory_id, (count, last) in zip(memory_ids, replies, strict=True)
        if count is not None
    }


def memories_from_turns(
    *, user_id: str, turn_ids: Sequence[str], types: Sequence[str] = (), limit: int = 50
) -> list[Memory]:
    """Live memories of a user that came from these chat turns (their `source`), oldest first:
    a fact's source message, or the facts extracted from a message."""
    # Sources are free text for API callers: only ids that can be turn ids are looked up.
    turn_ids = [t for t in turn_ids if t and len(t) <= MAX_ID_LENGTH and "," not in t and t.isprintable()]
    if not turn_ids:
        return []
    ensure_index()
    query = MemoryFilter.build(user_id=user_id, types=list(types) or None).query(now=time.time())
    query = f"{query} {tag_clause('source_turns', turn_ids)}"
    rows = run_search(ft_search_args(query, limit=limit, sort_by="created_at"))[1]
    return [from_hash(row.fields) for row in rows]


def known_users(*, offset: int = 0, limit: int = 50) -> list[tuple[str, float]]:
    """User ids with their last activity, most recent first."""
    return user_index.most_recent(offset=offset, limit=limit)


# --- Dedup helpers (for extraction) -------------------------------------------------------------


EXACT_DUPLICATES_LIMIT = 20


def find_exact_duplicates(
    *, filter: MemoryFilter, text: str, vector: np.ndarray | None = None
) -> list[Memory]:
    """Memories in scope whose text equals `text` up to case and whitespace.

    `content_hash` is not indexed (~90 B a memory in the index for one query): the text's
    nearest neighbours in scope are read instead and their hashes compared. The embedder is
    uncased and tokenises whitespace away, so an equal text is at distance ~0, ahead of any other.
    `vector`: the text's embedding when the caller has it."""
    if vector is None:
        vector = get_embedder().embed([text])[0]
    ensure_index()
    digest = content_hash(text)
    rows = _knn(filter, vector, k=EXACT_DUPLICATES_LIMIT)
    return [m for m in (from_hash(row.fields) for row in rows) if m.content_hash == digest]


def find_similar(
    *,
    filter: MemoryFilter,
    text: str | None = None,
    vector: np.ndarray | None = None,
    max_distance: float | None = None,
    limit: int = 10,
) -> list[tuple[Memory, float]]:
    """Memories in scope within a cosine distance of the text, nearest first."""
    if vector is None:
        if text is None:
            raise InvalidInput("find_similar needs text or a vector")
        vector = get_embedder().embed([text])[0]
    threshold = settings.SEMANTIC_DEDUP_DISTANCE if max_distance is None else max_distance
    ensure_index()
    rows = _knn(filter, vector, k=limit)
    out = []
    for row in rows:
        distance = float(row.fields[b"vdist"])
        if distance <= threshold:
            out.append((from_hash(row.fields), distance))
    return out


def _knn(filter: MemoryFilter, vector: np.ndarray, *, k: int) -> list[Row]:
    query = f"({filter.query(now=time.time())})=>[KNN {k} @embedding $vec AS vdist]"
    args = ft_search_args(
        query,
        limit=k,
        params={"vec": vector_bytes(vector)},
        sort_by="vdist",
        return_fields=[*RETURN_FIELDS, "vdist"],
    )
    return run_search(args)[1]
