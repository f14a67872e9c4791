"""Reads from memory: fetch, history, lists, counts, dedup candidates and search with scores."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import redis
from django.conf import settings

from core.embeddings import get_embedder
from core.redis_client import get_redis
from core.text import clean_text
from core.text import loads as stored_json
from memory import events, keys
from memory.index import ensure_index, index_name
from memory.query import (
    MAX_ID_LENGTH,
    MemoryFilter,
    keyword_clause,
    keyword_terms,
    tag_clause,
    validate_id,
    validate_scope_id,
)
from memory.records import (
    RETURN_FIELDS,
    content_hash,
    from_hash,
    from_return_fields,
    ttl_or_none,
    vector_bytes,
    vector_from_bytes,
)
from memory.topics import query_topics
from memory.types import (
    HistoryEvent,
    InvalidInput,
    Memory,
    MemoryNotFound,
    ScoreBreakdown,
    SearchHit,
    SearchResult,
)

SearchMode = Literal["semantic", "keyword", "hybrid"]
SEARCH_MODES: tuple[SearchMode, ...] = ("semantic", "keyword", "hybrid")
# BM25 scores are unbounded; squash them as s / (s + K) so they mix with cosine similarity.
# RediSearch's BM25 scores for these short texts are ~0.1-1 (median best match 0.55 on LoCoMo), so a
# small K keeps the keyword signal in range: K=4 capped it near 0.2 (recall@10 42.5 -> 53.2 with 0.5).
BM25_SATURATION = 0.5
# Fewer candidates than this cost recall: the conversation context needs a session's other turns in
# the pool (LoCoMo recall@10: 100 KNN + 50 BM25 candidates 70.5, 150 + 60 71.2, 150 + 75 71.2).
MIN_CANDIDATES = 150
MAX_CANDIDATES = 200
# BM25 hits beyond this rank barely move a fused top-k; each may bring its 1.5 KB vector along.
KEYWORD_CANDIDATES = 60
# A query word found in more than this share of the user's memories (names of the people talking,
# the user's own name) carries no signal for BM25; drop it. Only judged once a user has enough
# memories for shares to mean something. LoCoMo recall@10 +8.0 points.
COMMON_TERM_SHARE = 0.05
# The topic bonus lifts extracted facts only: raw turns filed by a lexicon drowned the facts
# (LoCoMo end to end R@10 71.0 -> 65.4 at weight 0.2 with raw turns, 70.7 with facts only; the
# persona suites answer as many questions or more with facts only).
TOPIC_TYPES: list[str] | None = ["semantic", "episodic", "procedural"]
# Keys the topic query may return (NOCONTENT: ids only); it is not limited to the candidate pool.
TOPIC_CANDIDATES = 1000
COMMON_TERM_MIN_MEMORIES = 50


def get_memory(*, memory_id: str, include_deleted: bool = True) -> Memory:
    memory_id = validate_id(memory_id, name="memory_id")
    client = get_redis()
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.memory(memory_id))
        pipe.ttl(keys.memory(memory_id))
        pipe.hgetall(keys.memory_stats(memory_id))
        raw, ttl, stats = pipe.execute()
    if raw:
        return from_hash({**raw, **stats}, ttl_seconds=ttl_or_none(ttl))
    if include_deleted:
        trashed = client.hgetall(keys.trash(memory_id))
        if trashed:
            return from_hash(
                trashed, ttl_seconds=ttl_or_none(client.ttl(keys.trash(memory_id))), deleted=True
            )
    raise MemoryNotFound(f"no memory {memory_id}")


def memory_ttl(*, memory_id: str) -> int | None:
    """Seconds left, or None when the memory does not expire. Raises if it does not exist."""
    return get_memory(memory_id=memory_id, include_deleted=False).ttl_seconds


def memory_history(*, memory_id: str) -> list[HistoryEvent]:
    raw = get_redis().lrange(keys.history(validate_id(memory_id, name="memory_id")), 0, -1)
    return [HistoryEvent.from_dict(stored_json(item)) for item in raw]


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
    search over all history.
    """
    found: list[dict[str, Any]] = []
    try:
        entries = get_redis().xrevrange(keys.mutation_stream(), count=scan)
    except redis.ResponseError:
        return found
    target = user_id.encode()
    for _entry_id, fields in entries:
        if user_id and fields.get(b"user_id") != target:
            continue
        try:
            found.append(stored_json(fields[b"data"]))
        except (KeyError, ValueError):
            continue
        if len(found) >= limit:
            break
    return found


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


# --- Raw FT.SEARCH ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    key: str
    score: float
    fields: dict[bytes, bytes]


def _ft_search_args(
    query: str,
    *,
    limit: int,
    offset: int = 0,
    params: dict[str, bytes | str] | None = None,
    sort_by: str | None = None,
    descending: bool = False,
    with_scores: bool = False,
    scorer: str | None = None,
    return_fields: Sequence[str] = RETURN_FIELDS,
) -> list[Any]:
    args: list[Any] = ["FT.SEARCH", index_name(), query]
    if with_scores:
        args.append("WITHSCORES")
    if scorer:
        args += ["SCORER", scorer]
    args += ["RETURN", len(return_fields), *return_fields]
    if sort_by:
        args += ["SORTBY", sort_by, "DESC" if descending else "ASC"]
    args += ["LIMIT", offset, limit]
    if params:
        args.append("PARAMS")
        args.append(2 * len(params))
        for name, value in params.items():
            args += [name, value]
    args += ["DIALECT", 2]
    return args


def _parse(reply: list[Any], *, with_scores: bool) -> tuple[int, list[_Row]]:
    total = int(reply[0])
    rows: list[_Row] = []
    step = 3 if with_scores else 2
    for i in range(1, len(reply), step):
        key = reply[i].decode()
        score = float(reply[i + 1]) if with_scores else 0.0
        flat = reply[i + step - 1] or []
        fields = dict(zip(flat[::2], flat[1::2], strict=False))
        rows.append(_Row(key, score, fields))
    return total, rows


def _run(args: list[Any], *, with_scores: bool = False) -> tuple[int, list[_Row]]:
    try:
        return _parse(get_redis().execute_command(*args), with_scores=with_scores)
    except redis.ResponseError as exc:
        raise InvalidInput(f"the search could not run: {exc}") from exc


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
    total, rows = _run(
        _ft_search_args(
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


def counts_by_type(*, user_id: str | None) -> dict[str, int]:
    """Live memories per type, of one user or (user_id=None) of everyone, from the index (no key scan)."""
    ensure_index()
    # Expired keys can linger until Redis' expiry cycle reaches them; never count them.
    query = f"-@expires_at:[-inf {time.time()!r}]"
    if user_id is not None:
        query = f"{tag_clause('user_id', [validate_scope_id(user_id, name='user_id')])} {query}"
    reply = get_redis().execute_command(
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
    replies = _pipeline(
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
    rows = _run(_ft_search_args(query, limit=limit, sort_by="created_at"))[1]
    return [from_hash(row.fields) for row in rows]


def known_users(*, offset: int = 0, limit: int = 50) -> list[tuple[str, float]]:
    """User ids with their last activity, most recent first."""
    raw = get_redis().zrevrange(keys.users(), offset, offset + limit - 1, withscores=True)
    return [(user.decode(), float(score)) for user, score in raw]


# --- Dedup helpers (for extraction) -------------------------------------------------------------


def find_exact_duplicates(*, filter: MemoryFilter, text: str) -> list[Memory]:
    """Memories in scope whose text equals `text` up to case and whitespace."""
    ensure_index()
    query = f"{filter.query(now=time.time())} {tag_clause('content_hash', [content_hash(text)])}"
    return [from_hash(row.fields) for row in _run(_ft_search_args(query, limit=20))[1]]


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


def _knn(filter: MemoryFilter, vector: np.ndarray, *, k: int) -> list[_Row]:
    query = f"({filter.query(now=time.time())})=>[KNN {k} @embedding $vec AS vdist]"
    args = _ft_search_args(
        query,
        limit=k,
        params={"vec": vector_bytes(vector)},
        sort_by="vdist",
        return_fields=[*RETURN_FIELDS, "vdist"],
    )
    return _run(args)[1]


# --- Search -------------------------------------------------------------------------------------


def _pipeline(commands: list[list[Any]]) -> list[Any]:
    if not commands:
        return []
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute())
    except redis.ResponseError as exc:
        raise InvalidInput(f"the search could not run: {exc}") from exc


def _load(redis_keys: list[str]) -> dict[str, Memory]:
    """Memories by key (keys that vanished since the search are left out)."""
    replies = _pipeline([["HMGET", key, *RETURN_FIELDS] for key in redis_keys])
    return {
        key: from_return_fields(values)
        for key, values in zip(redis_keys, replies, strict=True)
        if values and values[0] is not None
    }


@dataclass
class _TermCounts:
    """How many of a scope's memories there are, and how many contain each word, as counted recently."""

    expires: float
    total: int
    per_term: dict[str, int]


# Word counts move slowly; a user's turns within a minute reuse them (saves a round trip per turn).
_term_counts: OrderedDict[str, _TermCounts] = OrderedDict()
_term_counts_lock = threading.Lock()
TERM_COUNTS_TTL_SECONDS = 60.0
TERM_COUNTS_MAX_SCOPES = 10_000


def _cache_key(base: str, cache_key: str | None) -> str:
    # Per server too: tests, benches and the eval point one process at several Redis instances.
    return f"{settings.REDIS_URL} {cache_key or base}"


def _fresh_counts(key: str) -> _TermCounts | None:
    with _term_counts_lock:
        counts = _term_counts.get(key)
    return counts if counts is not None and counts.expires >= time.monotonic() else None


def _cached_word_counts(base: str, terms: list[str], *, cache_key: str | None = None) -> _TermCounts | None:
    """The counts of this scope if fresh in the cache and covering every word; else None."""
    counts = _fresh_counts(_cache_key(base, cache_key))
    if counts is None or any(t not in counts.per_term for t in terms):
        return None
    return counts


def _scope_word_counts(base: str, terms: list[str], *, cache_key: str | None = None) -> _TermCounts:
    """The scope's size and each word's count (one pipelined count per word not cached yet)."""
    key = _cache_key(base, cache_key)
    counts = _fresh_counts(key)
    unknown = terms if counts is None else [t for t in terms if t not in counts.per_term]
    if counts is not None and not unknown:
        return counts
    replies = _pipeline(
        [
            ["FT.SEARCH", index_name(), base, "LIMIT", 0, 0, "DIALECT", 2],
            *[
                ["FT.SEARCH", index_name(), f"{base} {keyword_clause([t])}", "LIMIT", 0, 0, "DIALECT", 2]
                for t in unknown
            ],
        ]
    )
    if counts is None:
        counts = _TermCounts(
            expires=time.monotonic() + TERM_COUNTS_TTL_SECONDS, total=int(replies[0][0]), per_term={}
        )
    counts.per_term.update({t: int(reply[0]) for t, reply in zip(unknown, replies[1:], strict=True)})
    with _term_counts_lock:
        _term_counts[key] = counts
        _term_counts.move_to_end(key)
        while len(_term_counts) > TERM_COUNTS_MAX_SCOPES:
            _term_counts.popitem(last=False)
    return counts


def _informative(terms: list[str], counts: _TermCounts) -> list[str]:
    if len(terms) < 2 or counts.total < COMMON_TERM_MIN_MEMORIES:
        return terms
    per_term = [counts.per_term[t] for t in terms]
    kept = [t for t, n in zip(terms, per_term, strict=True) if n <= COMMON_TERM_SHARE * counts.total]
    # All common: keep the rarest so the keyword signal is not simply gone.
    return kept or [min(zip(per_term, terms, strict=True))[1]]


def informative_terms(base: str, terms: list[str], *, cache_key: str | None = None) -> list[str]:
    """Drop words that occur in too many of this scope's memories."""
    if len(terms) < 2:
        return terms
    return _informative(terms, _scope_word_counts(base, terms, cache_key=cache_key))


def forget_term_counts() -> None:
    with _term_counts_lock:
        _term_counts.clear()


@dataclass(frozen=True)
class _Weights:
    """The scoring knobs, read from settings once per search (not once per candidate)."""

    vector: float
    keyword: float
    recency: float
    half_life_days: float
    session: float
    neighbour: float
    topic: float

    @classmethod
    def for_mode(cls, mode: SearchMode) -> _Weights:
        return cls(
            vector=0.0 if mode == "keyword" else settings.HYBRID_VECTOR_WEIGHT,
            keyword=0.0 if mode == "semantic" else settings.HYBRID_KEYWORD_WEIGHT,
            recency=settings.RECENCY_WEIGHT,
            half_life_days=settings.RECENCY_HALF_LIFE_DAYS,
            session=settings.RETRIEVAL_SESSION_WEIGHT,
            neighbour=settings.RETRIEVAL_NEIGHBOUR_WEIGHT,
            topic=settings.RETRIEVAL_TOPIC_WEIGHT,
        )

    @classmethod
    def from_dict(cls, data: dict[str, float], *, mode: SearchMode) -> _Weights:
        """The weights a trace saved (`as_dict`), as the search of `mode` applied them."""
        today = cls.for_mode(mode)

        def saved(name: str, default: float) -> float:
            return float(data.get(name, default) or 0.0)

        return cls(
            vector=0.0 if mode == "keyword" else saved("vector", today.vector),
            keyword=0.0 if mode == "semantic" else saved("keyword", today.keyword),
            recency=saved("recency", today.recency),
            half_life_days=saved("recency_half_life_days", today.half_life_days) or today.half_life_days,
            session=saved("session", today.session),
            neighbour=saved("neighbour", today.neighbour),
            topic=saved("topic", today.topic),
        )

    def as_dict(self) -> dict[str, float]:
        """As traces and reports show them."""
        return {
            "vector": self.vector,
            "keyword": self.keyword,
            "recency": self.recency,
            "recency_half_life_days": self.half_life_days,
            "session": self.session,
            "neighbour": self.neighbour,
            "topic": self.topic,
        }

    def match(self, vector: np.ndarray, keyword: np.ndarray, recency: np.ndarray) -> np.ndarray:
        total = self.vector + self.keyword + self.recency
        if not total:
            return np.zeros_like(vector)
        return (self.vector * vector + self.keyword * keyword + self.recency * recency) / total

    def final(
        self, match: np.ndarray, session: np.ndarray, neighbour: np.ndarray, topic: np.ndarray | None
    ) -> np.ndarray:
        in_context = (match + self.session * session + self.neighbour * neighbour) / (
            1.0 + self.session + self.neighbour
        )
        if topic is None:  # the question names no topic: nothing to favour
            return in_context
        return (in_context + self.topic * topic) / (1.0 + self.topic)


def _cut(floor: float, relative: float, best: float) -> float:
    return max(floor, relative * best)


def chat_cut(best: float) -> float:
    """The score a memory needs to be recalled in a chat, given the best score of its search."""
    return round(_cut(settings.RETRIEVAL_THRESHOLD, settings.RETRIEVAL_RELATIVE_THRESHOLD, best), 4)


def scoring_weights() -> dict[str, float]:
    """The weights a hybrid search scores with, as traces and reports show them."""
    return _Weights.for_mode("hybrid").as_dict()


def score_legend(*, weights: dict[str, float] | None = None) -> dict[str, float]:
    """The constants the score legend names (a trace's own half-life when it saved one)."""
    half_life = float((weights or {}).get("recency_half_life_days") or settings.RECENCY_HALF_LIFE_DAYS)
    return {"bm25_saturation": BM25_SATURATION, "half_life_days": half_life}


@dataclass(frozen=True)
class ScoreTerm:
    """weight x value, one part of a weighted average (weight 1 for the previous step's result)."""

    name: str
    weight: float
    value: float

    @property
    def weight_label(self) -> str:
        return f"{round(self.weight, 4):g}"


@dataclass(frozen=True)
class ScoreStep:
    """result = (Σ weight x value over terms) / divisor: one of the averages the final score is made of."""

    name: str
    terms: list[ScoreTerm]
    divisor: float
    result: float

    @property
    def divisor_label(self) -> str:
        return f"{round(self.divisor, 4):g}"


@dataclass(frozen=True)
class ScoreExplanation:
    """How a hit's final score was made, step by step, from the weights its search used.

    `context_added` is false when the conversation context changed nothing (a memory said outside
    a session, or the best of its session with no neighbours: session and neighbour equal its match).
    `reproduces` says the steps give the stored final score (they always should)."""

    kind: Literal["formula", "pinned", "profile"]
    steps: list[ScoreStep]
    final: float
    context_added: bool = False
    topical: bool = False
    reproduces: bool = True


_SAME = 5e-4  # scores are stored rounded to 4 places


def explain_score(
    *,
    score: ScoreBreakdown | dict[str, float],
    mode: str = "hybrid",
    weights: dict[str, float] | None = None,
    reason: str = "match",
) -> ScoreExplanation:
    """The final score of a hit as the engine computed it (`_Weights.match` and `.final`), with this
    hit's numbers. `weights` are the ones a trace saved; without them, today's settings for `mode`."""
    values = asdict(score) if isinstance(score, ScoreBreakdown) else dict(score)
    final = float(values.get("final") or 0.0)
    if reason == "pinned":
        return ScoreExplanation(kind="pinned", steps=[], final=final)
    if reason == "profile" or mode == "profile":
        return ScoreExplanation(kind="profile", steps=[], final=float(values.get("importance") or final))
    w = _Weights.from_dict(weights, mode=mode) if weights else _Weights.for_mode(mode)  # type: ignore[arg-type]
    vector, keyword, recency = (float(values.get(k) or 0.0) for k in ("vector", "keyword", "recency"))
    session, neighbour, topic = (float(values.get(k) or 0.0) for k in ("session", "neighbour", "topic"))
    one = np.asarray
    match = float(w.match(one(vector), one(keyword), one(recency)))
    in_context = float(w.final(one(match), one(session), one(neighbour), None))
    with_topic = float(w.final(one(match), one(session), one(neighbour), one(topic)))
    # Whether the question named a topic is not stored per hit: a topic hit says so, otherwise the
    # stored final tells which formula made it.
    topical = bool(w.topic) and (topic > 0 or abs(with_topic - final) < abs(in_context - final))
    steps = [
        ScoreStep(
            name="match",
            terms=[
                ScoreTerm(name, weight, value)
                for name, weight, value in (
                    ("vector", w.vector, vector),
                    ("keyword", w.keyword, keyword),
                    ("recency", w.recency, recency),
                )
                if weight
            ],
            divisor=w.vector + w.keyword + w.recency,
            result=match,
        )
    ]
    context_added = abs(session - match) > _SAME or abs(neighbour - match) > _SAME
    if context_added and (w.session or w.neighbour):
        steps.append(
            ScoreStep(
                name="with conversation",
                terms=[
                    ScoreTerm("match", 1.0, match),
                    *[
                        ScoreTerm(n, wt, v)
                        for n, wt, v in (
                            ("session", w.session, session),
                            ("neighbour", w.neighbour, neighbour),
                        )
                        if wt
                    ],
                ],
                divisor=1.0 + w.session + w.neighbour,
                result=in_context,
            )
        )
    if topical:
        steps.append(
            ScoreStep(
                name="with topic",
                terms=[ScoreTerm(steps[-1].name, 1.0, in_context), ScoreTerm("topic", w.topic, topic)],
                divisor=1.0 + w.topic,
                result=with_topic,
            )
        )
    made = with_topic if topical else in_context
    reproduces = abs(made - final) < 2 * _SAME
    if reproduces:
        # The sum of stored (rounded) parts can miss the stored final in the 4th digit: the last
        # step shows the final the grid and "Included because" show, not a second rounding of it.
        steps[-1] = replace(steps[-1], result=final)
    return ScoreExplanation(
        kind="formula",
        steps=steps,
        final=final,
        context_added=context_added,
        topical=topical,
        reproduces=reproduces,
    )


@dataclass
class _Pool:
    """The candidates of one search as columns: scoring ~150 of them is a few array operations."""

    keys: list[str] = field(default_factory=list)
    position: dict[str, int] = field(default_factory=dict)
    updated_at: list[float] = field(default_factory=list)
    created_at: list[float] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)
    vector: list[float] = field(default_factory=list)
    bm25: list[float] = field(default_factory=list)
    topic: list[float] = field(default_factory=list)

    def slot(self, row: _Row) -> int:
        """The row's position in the columns, added on first sight."""
        at = self.position.get(row.key)
        if at is None:
            at = self.position[row.key] = len(self.keys)
            self.keys.append(row.key)
            self.updated_at.append(float(row.fields.get(b"updated_at", 0)))
            self.created_at.append(float(row.fields.get(b"created_at", 0)))
            self.session_ids.append(row.fields.get(b"session_id", b"").decode())
            self.vector.append(0.0)
            self.bm25.append(0.0)
            self.topic.append(0.0)
        return at


@dataclass(frozen=True)
class _Scores:
    """Every score of every candidate, as lists aligned with the pool's keys."""

    vector: list[float]
    keyword: list[float]
    recency: list[float]
    bm25: list[float]
    session: list[float]
    neighbour: list[float]
    topic: list[float]
    final: list[float]

    def breakdown(self, i: int) -> ScoreBreakdown:
        return ScoreBreakdown(
            vector=self.vector[i],
            keyword=self.keyword[i],
            recency=self.recency[i],
            final=self.final[i],
            bm25_raw=self.bm25[i],
            session=self.session[i],
            neighbour=self.neighbour[i],
            topic=self.topic[i],
        )


def _conversation_context(pool: _Pool, match: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Memories said in the same session as a strong match, or right next to one, are likely about
    the same thing: each candidate gets the best match of its session and of the candidates just
    before/after it there (by created_at). A memory without a session stands alone: both are its own
    match, so its final score is its match. LoCoMo recall@10 65.0 -> 71.2 (bench/results/locomo.json).
    """
    session, neighbour = match.copy(), match.copy()
    in_sessions = [i for i, session_id in enumerate(pool.session_ids) if session_id]
    best: dict[str, float] = {}
    for i in in_sessions:
        session_id = pool.session_ids[i]
        best[session_id] = max(best.get(session_id, 0.0), float(match[i]))
    for i in in_sessions:
        session[i] = best[pool.session_ids[i]]
        neighbour[i] = 0.0
    in_sessions.sort(key=lambda i: (pool.session_ids[i], pool.created_at[i], pool.keys[i]))
    for before, after in pairwise(in_sessions):
        if pool.session_ids[before] == pool.session_ids[after]:
            neighbour[before] = max(neighbour[before], match[after])
            neighbour[after] = max(neighbour[after], match[before])
    return session, neighbour


def _score(pool: _Pool, weights: _Weights, *, now: float, topical: bool) -> _Scores:
    vector = np.asarray(pool.vector)
    bm25 = np.asarray(pool.bm25)
    keyword = bm25 / (bm25 + BM25_SATURATION)
    age_days = np.maximum(0.0, now - np.asarray(pool.updated_at)) / 86400
    recency = np.power(0.5, age_days / weights.half_life_days)
    match = weights.match(vector, keyword, recency)
    session, neighbour = _conversation_context(pool, match)
    topic = np.asarray(pool.topic)
    return _Scores(
        vector=vector.tolist(),
        keyword=keyword.tolist(),
        recency=recency.tolist(),
        bm25=bm25.tolist(),
        session=session.tolist(),
        neighbour=neighbour.tolist(),
        topic=topic.tolist(),
        final=weights.final(match, session, neighbour, topic if topical else None).tolist(),
    )


def _embeddings(redis_keys: list[str]) -> dict[str, bytes]:
    replies = _pipeline([["HGET", key, "embedding"] for key in redis_keys])
    return {key: raw for key, raw in zip(redis_keys, replies, strict=True) if raw}


def search_memories(
    *,
    filter: MemoryFilter,
    text: str,
    mode: SearchMode = "hybrid",
    top_k: int | None = None,
    threshold: float | None = None,
    near_misses: int | None = None,
    query_vector: np.ndarray | None = None,
    now: float | None = None,
    relative_threshold: float | None = None,
) -> SearchResult:
    """Top memories for `text` in scope, each with its score breakdown, plus the near misses.

    Hybrid runs a filtered KNN and a filtered BM25 query in one round trip (after the per-scope word
    counts of `informative_terms`), scores the union, then loads the returned memories:
    match = (w_v·vector + w_k·keyword + w_r·recency) / (w_v + w_k + w_r), and
    final = (match + w_s·session + w_n·neighbour) / (1 + w_s + w_n) (see `_conversation_context`).
    """
    started = time.perf_counter()
    if mode not in SEARCH_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(SEARCH_MODES)}")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("search text is empty")
    text = clean_text(text)  # lone surrogates and NUL would fail the embedder and the Redis encoder
    if len(text) > settings.MESSAGE_MAX_CHARS:
        raise InvalidInput(f"search text is longer than {settings.MESSAGE_MAX_CHARS} characters")
    top_k = settings.RETRIEVAL_TOP_K if top_k is None else top_k
    if not 1 <= top_k <= 100:
        raise InvalidInput("top_k must be between 1 and 100")
    threshold = settings.RETRIEVAL_THRESHOLD if threshold is None else threshold
    relative = settings.RETRIEVAL_RELATIVE_THRESHOLD if relative_threshold is None else relative_threshold
    near_misses = settings.RETRIEVAL_NEAR_MISSES if near_misses is None else near_misses
    now = time.time() if now is None else now
    ensure_index()

    candidates = min(MAX_CANDIDATES, max(MIN_CANDIDATES, 4 * top_k, top_k + near_misses + 10))
    base = filter.query(now=now)
    terms = keyword_terms(text) if mode != "semantic" else []
    # One word needs no counts (nothing to drop): only use them when already cached.
    counts = (
        _scope_word_counts(base, terms, cache_key=repr(filter))
        if len(terms) > 1
        else _cached_word_counts(base, terms, cache_key=repr(filter))
    )
    if counts is not None:
        terms = _informative(terms, counts)
    if mode != "keyword" and query_vector is None:
        query_vector = get_embedder().embed([text])[0]
    # When the KNN side already covers the whole scope, keyword hits need no vectors of their own.
    keyword_needs_vectors = query_vector is not None and (counts is None or counts.total > candidates)

    # Phase 1: both queries in one round trip, returning only what scoring needs (small replies).
    context_fields = ["updated_at", "created_at", "session_id"]
    commands: list[list[Any]] = []
    if mode != "keyword":
        assert query_vector is not None
        commands.append(
            _ft_search_args(
                f"({base})=>[KNN {candidates} @embedding $vec AS vdist]",
                limit=candidates,
                params={"vec": vector_bytes(query_vector)},
                sort_by="vdist",
                return_fields=["vdist", *context_fields],
            )
        )
    if terms:
        commands.append(
            _ft_search_args(
                f"{base} {keyword_clause(terms)}",
                limit=min(candidates, KEYWORD_CANDIDATES),
                with_scores=True,
                scorer="BM25",
                return_fields=[*context_fields, *(["embedding"] if keyword_needs_vectors else [])],
            )
        )
    weights = _Weights.for_mode(mode)
    topics = query_topics(text) if weights.topic else []
    if topics:
        # Keys only: which candidates are filed under what the question is about.
        topical_base = f"{base} {tag_clause('type', TOPIC_TYPES)}" if TOPIC_TYPES else base
        commands.append(
            [
                "FT.SEARCH",
                index_name(),
                f"{topical_base} {tag_clause('topics', topics)}",
                "NOCONTENT",
                "LIMIT",
                0,
                TOPIC_CANDIDATES,
                "DIALECT",
                2,
            ]
        )
    replies = _pipeline(commands)

    pool = _Pool()
    reply_index = 0
    if mode != "keyword":
        for row in _parse(replies[reply_index], with_scores=False)[1]:
            pool.vector[pool.slot(row)] = max(0.0, 1.0 - float(row.fields[b"vdist"]))
        reply_index += 1
    keyword_only: dict[str, bytes | None] = {}
    if terms:
        for row in _parse(replies[reply_index], with_scores=True)[1]:
            if row.key not in pool.position:
                keyword_only[row.key] = row.fields.get(b"embedding")
            pool.bm25[pool.slot(row)] = row.score
    if keyword_only and query_vector is not None:
        # Normally carried by the BM25 reply; fetched here when the scope outgrew the cached count.
        missing = [key for key, raw in keyword_only.items() if raw is None]
        vectors = {**{k: v for k, v in keyword_only.items() if v is not None}, **_embeddings(missing)}
        for key, raw in vectors.items():
            pool.vector[pool.position[key]] = max(0.0, float(vector_from_bytes(raw) @ query_vector))

    if topics:
        for raw_key in replies[-1][1:]:
            at = pool.position.get(raw_key.decode())
            if at is not None:
                pool.topic[at] = 1.0
    scores = _score(pool, weights, now=now, topical=bool(topics))
    final, keys_ = scores.final, pool.keys
    ranked = sorted(range(len(keys_)), key=lambda i: (-final[i], keys_[i]))
    # Scores are relative to the query (a short question scores lower against everything), so the
    # cut follows the best hit, with an absolute floor for queries nothing answers.
    cut = _cut(threshold, relative, final[ranked[0]] if ranked else 0.0)
    chosen = [i for i in ranked if final[i] >= cut][:top_k]
    missed = [i for i in ranked if final[i] < cut][:near_misses]
    # Phase 2: full fields only for what is returned.
    memories = _load([keys_[i] for i in chosen + missed])

    def hits(indexes: list[int]) -> list[SearchHit]:
        return [SearchHit(memories[keys_[i]], scores.breakdown(i)) for i in indexes if keys_[i] in memories]

    return SearchResult(
        hits=hits(chosen),
        near_misses=hits(missed),
        threshold=threshold,
        mode=mode,
        took_ms=(time.perf_counter() - started) * 1000,
        relative_threshold=relative,
        cut=cut,
    )
