"""Search with scores: KNN and BM25 candidates in one round trip, scored with the conversation context."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from django.conf import settings

from core.embeddings import get_embedder
from core.text import clean_text
from memory.index import ensure_index, index_name
from memory.query import MemoryFilter, keyword_clause, keyword_terms, tag_clause
from memory.raw_search import Row, ft_search_args, load_memories, parse_reply, run_pipeline
from memory.records import vector_bytes, vector_from_bytes
from memory.scoring import BM25_SATURATION, SEARCH_MODES, SearchMode, Weights, score_cut
from memory.search_params import SearchParams, check_top_k
from memory.term_stats import cached_word_counts, drop_common_terms, scope_word_counts
from memory.topics import query_topics
from memory.types import InvalidInput, ScoreBreakdown, SearchHit, SearchResult


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

    def slot(self, row: Row) -> int:
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


def _score(pool: _Pool, weights: Weights, *, now: float, topical: bool) -> _Scores:
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
    replies = run_pipeline([["HGET", key, "embedding"] for key in redis_keys])
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
    params: SearchParams | None = None,
) -> SearchResult:
    """Top memories for `text` in scope, each with its score breakdown, plus the near misses.

    Hybrid runs a filtered KNN and a filtered BM25 query in one round trip (after the per-scope word
    counts of `term_stats.scope_word_counts`, which `drop_common_terms` uses to leave out words most
    of the scope's memories contain), scores the union, then loads the returned memories:
    match = (w_v·vector + w_k·keyword + w_r·recency) / (w_v + w_k + w_r), and
    final = (match + w_s·session + w_n·neighbour) / (1 + w_s + w_n) (see `_conversation_context`).
    The weights, cuts and pool sizes are `params` (default: today's settings); `top_k`, `threshold`,
    `relative_threshold` and `near_misses`, when given, win over theirs.
    """
    started = time.perf_counter()
    if mode not in SEARCH_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(SEARCH_MODES)}")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("search text is empty")
    text = clean_text(text)  # lone surrogates and NUL would fail the embedder and the Redis encoder
    if len(text) > settings.MESSAGE_MAX_CHARS:
        raise InvalidInput(f"search text is longer than {settings.MESSAGE_MAX_CHARS} characters")
    params = SearchParams.from_settings() if params is None else params
    top_k = params.top_k if top_k is None else top_k
    check_top_k(top_k)
    threshold = params.threshold if threshold is None else threshold
    relative = params.relative_threshold if relative_threshold is None else relative_threshold
    near_misses = params.near_misses if near_misses is None else near_misses
    now = time.time() if now is None else now
    ensure_index()

    candidates = min(params.max_candidates, max(params.min_candidates, 4 * top_k, top_k + near_misses + 10))
    base = filter.query(now=now)
    terms = keyword_terms(text) if mode != "semantic" else []
    # One word needs no counts (nothing to drop): only use them when already cached.
    counts = (
        scope_word_counts(base, terms, cache_key=repr(filter))
        if len(terms) > 1
        else cached_word_counts(base, terms, cache_key=repr(filter))
    )
    if counts is not None:
        terms = drop_common_terms(terms, counts, params=params)
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
            ft_search_args(
                f"({base})=>[KNN {candidates} @embedding $vec AS vdist]",
                limit=candidates,
                params={"vec": vector_bytes(query_vector)},
                sort_by="vdist",
                return_fields=["vdist", *context_fields],
            )
        )
    if terms:
        commands.append(
            ft_search_args(
                f"{base} {keyword_clause(terms)}",
                limit=min(candidates, params.keyword_candidates),
                with_scores=True,
                scorer="BM25",
                return_fields=[*context_fields, *(["embedding"] if keyword_needs_vectors else [])],
            )
        )
    weights = Weights.for_mode(mode, params)
    topics = query_topics(text) if weights.topic else []
    if topics:
        # Keys only: which candidates are filed under what the question is about.
        types = params.topic_types
        topical_base = f"{base} {tag_clause('type', list(types))}" if types else base
        commands.append(
            [
                "FT.SEARCH",
                index_name(),
                f"{topical_base} {tag_clause('topics', topics)}",
                "NOCONTENT",
                "LIMIT",
                0,
                params.topic_candidates,
                "DIALECT",
                2,
            ]
        )
    replies = run_pipeline(commands)

    pool = _Pool()
    reply_index = 0
    if mode != "keyword":
        for row in parse_reply(replies[reply_index], with_scores=False)[1]:
            pool.vector[pool.slot(row)] = max(0.0, 1.0 - float(row.fields[b"vdist"]))
        reply_index += 1
    keyword_only: dict[str, bytes | None] = {}
    if terms:
        for row in parse_reply(replies[reply_index], with_scores=True)[1]:
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
    cut = score_cut(threshold, relative, final[ranked[0]] if ranked else 0.0)
    chosen = [i for i in ranked if final[i] >= cut][:top_k]
    missed = [i for i in ranked if final[i] < cut][:near_misses]
    # Phase 2: full fields only for what is returned.
    memories = load_memories([keys_[i] for i in chosen + missed])

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
