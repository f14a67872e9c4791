"""Search with scores: KNN and BM25 candidates in one round trip, scored with the conversation context,
then the returned memories in a second one."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from core.embeddings import get_embedder
from core.text import clean_text
from memory.index import ensure_index, forget_index_cache, index_name
from memory.query import MemoryFilter, keyword_clause, keyword_terms, tag_clause
from memory.raw_search import Rows, ft_search_args, load_memories, reply_columns, run_pipeline
from memory.records import vector_bytes, vector_from_bytes
from memory.scoring import BM25_SATURATION, SEARCH_MODES, SearchMode, Weights, score_cut
from memory.search_params import SearchParams, check_top_k
from memory.term_stats import (
    CountedKeywordSearch,
    cached_word_counts,
    counted_keyword_search,
    drop_common_terms,
)
from memory.topics import query_topics
from memory.types import InvalidInput, ScoreBreakdown, SearchHit, SearchResult


@dataclass
class _Pool:
    """The candidates of one search as columns (KNN rows first, then keyword-only rows), each with
    the fields its memory is built from, should it be returned."""

    keys: list[str] = field(default_factory=list)
    position: dict[str, int] = field(default_factory=dict)
    fields: list[dict[bytes, bytes]] = field(default_factory=list)
    vector: list[float] = field(default_factory=list)
    bm25: list[float] = field(default_factory=list)
    topic: list[float] = field(default_factory=list)

    def add(self, rows: Rows) -> list[int]:
        """Each row's position in the columns (rows seen before keep theirs)."""
        slots = []
        for key, fields in zip(rows.keys, rows.fields, strict=True):
            at = self.position.get(key)
            if at is None:
                at = self.position[key] = len(self.keys)
                self.keys.append(key)
                self.fields.append(fields)
            slots.append(at)
        missing = len(self.keys) - len(self.vector)
        for column in (self.vector, self.bm25, self.topic):
            column.extend([0.0] * missing)
        return slots

    def numbers(self, name: bytes) -> np.ndarray:
        return np.asarray([float(fields.get(name, 0)) for fields in self.fields], dtype=np.float64)


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


def _conversation_context(
    match: np.ndarray, *, session_ids: list[str], created_at: np.ndarray, keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Memories said in the same session as a strong match, or right next to one, are likely about
    the same thing: each candidate gets the best match of its session and of the candidates just
    before/after it there (by created_at). A memory without a session stands alone: both are its own
    match, so its final score is its match. LoCoMo recall@10 65.0 -> 71.2 (bench/results/locomo.json).
    """
    session, neighbour = match.copy(), match.copy()
    in_sessions = np.flatnonzero([bool(session_id) for session_id in session_ids])
    if not len(in_sessions):
        return session, neighbour
    sessions = np.asarray(session_ids)[in_sessions]
    # In session order, then by time: a session's candidates are one run, neighbours side by side.
    order = in_sessions[np.lexsort((keys[in_sessions], created_at[in_sessions], sessions))]
    ordered_sessions = np.asarray(session_ids)[order]
    ordered = match[order]
    starts = np.flatnonzero(np.r_[True, ordered_sessions[1:] != ordered_sessions[:-1]])
    best = np.maximum.reduceat(ordered, starts)
    session[order] = np.repeat(best, np.diff(np.r_[starts, len(order)]))
    same = ordered_sessions[1:] == ordered_sessions[:-1]
    after = np.zeros(len(order))
    after[:-1] = np.where(same, ordered[1:], 0.0)
    before = np.zeros(len(order))
    before[1:] = np.where(same, ordered[:-1], 0.0)
    neighbour[order] = np.maximum(after, before)
    return session, neighbour


def _score(pool: _Pool, weights: Weights, *, now: float, topical: bool, keys: np.ndarray) -> _Scores:
    vector = np.asarray(pool.vector)
    bm25 = np.asarray(pool.bm25)
    keyword = bm25 / (bm25 + BM25_SATURATION)
    age_days = np.maximum(0.0, now - pool.numbers(b"updated_at")) / 86400
    recency = np.power(0.5, age_days / weights.half_life_days)
    match = weights.match(vector, keyword, recency)
    session, neighbour = _conversation_context(
        match,
        session_ids=[fields.get(b"session_id", b"").decode() for fields in pool.fields],
        created_at=pool.numbers(b"created_at"),
        keys=keys,
    )
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


# RediSearch's refusal of a KNN query whose vector is of another dtype than the index's.
_VECTOR_SIZE_REFUSED = "query vector blob size"


def _knn_command(*, base: str, vector: np.ndarray, candidates: int, return_fields: list[str]) -> list[Any]:
    return ft_search_args(
        f"({base})=>[KNN {candidates} @embedding $vec AS vdist]",
        limit=candidates,
        params={"vec": vector_bytes(vector)},
        sort_by="vdist",
        return_fields=["vdist", *return_fields],
    )


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

    Two round trips: (1) one pipeline with a filtered KNN, a filtered BM25 query (leaving out the words
    most of the scope's memories contain, `drop_common_terms`: with counts cached, or counted by the
    server-side script `term_stats.counted_keyword_search` that then runs BM25) and the topic keys;
    (2) after scoring the union, one command loading the returned memories:
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
    if mode != "keyword" and query_vector is None:
        query_vector = get_embedder().embed([text])[0]
    weights = Weights.for_mode(mode, params)
    topics = query_topics(text) if weights.topic else []

    # Round trip 1: BM25, KNN and the topic keys in one pipeline, returning only what scoring needs.
    # BM25 leaves out words most of the scope's memories contain (`drop_common_terms`), judged by the
    # scope's word counts: cached, else counted by the same server-side script that then runs BM25.
    keyword_fields = ["updated_at", "created_at", "session_id"]
    keyword_limit = min(candidates, params.keyword_candidates)
    counts = cached_word_counts(base, terms, cache_key=repr(filter))
    counted: CountedKeywordSearch | None = None
    commands: list[list[Any]] = []
    if counts is None and len(terms) > 1:
        # When the KNN side already covers the whole scope, keyword hits need no vectors of their own.
        counted = counted_keyword_search(
            base,
            terms,
            cache_key=repr(filter),
            params=params,
            limit=keyword_limit,
            return_fields=keyword_fields,
            vectors_above=None if query_vector is None else candidates,
        )
        commands.append(counted.command)
    elif terms:
        # One word needs no counts (nothing to drop): only use them when already cached.
        if counts is not None:
            terms = drop_common_terms(terms, counts, params=params)
        with_vectors = query_vector is not None and (counts is None or counts.total > candidates)
        commands.append(
            ft_search_args(
                f"{base} {keyword_clause(terms)}",
                limit=keyword_limit,
                with_scores=True,
                scorer="BM25",
                return_fields=[*keyword_fields, *(["embedding"] if with_vectors else [])],
            )
        )
    knn_at: int | None = None
    if mode != "keyword":
        assert query_vector is not None
        knn_at = len(commands)
        commands.append(
            _knn_command(base=base, vector=query_vector, candidates=candidates, return_fields=keyword_fields)
        )
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
    try:
        replies = iter(run_pipeline(commands))
    except InvalidInput as exc:
        if knn_at is None or _VECTOR_SIZE_REFUSED not in str(exc):
            raise
        # Another process's `memory_index rebuild` switched the index's vector dtype while this one
        # still had the old one cached (up to RECHECK_SECONDS): read it again and ask once more.
        assert query_vector is not None
        forget_index_cache()
        commands[knn_at] = _knn_command(
            base=base, vector=query_vector, candidates=candidates, return_fields=keyword_fields
        )
        replies = iter(run_pipeline(commands))
    keyword_reply = None
    if counted is not None:
        counts, terms, _, keyword_reply = counted.absorb(next(replies))
    elif terms:
        keyword_reply = next(replies)

    pool = _Pool()
    if mode != "keyword":
        knn = reply_columns(next(replies), with_scores=False)
        pool.add(knn)
        pool.vector[:] = np.maximum(0.0, 1.0 - np.asarray([float(f[b"vdist"]) for f in knn.fields])).tolist()
    if keyword_reply is not None:
        keyword = reply_columns(keyword_reply, with_scores=True)
        outside = [key for key in keyword.keys if key not in pool.position]
        for at, score in zip(pool.add(keyword), keyword.scores, strict=True):
            pool.bm25[at] = score
        if outside and query_vector is not None:
            # Normally carried by the BM25 reply; fetched here when the scope outgrew the cached count.
            vectors = {key: pool.fields[pool.position[key]].get(b"embedding") for key in outside}
            missing = [key for key, raw in vectors.items() if raw is None]
            if missing:
                vectors.update(
                    zip(missing, run_pipeline([["HGET", key, "embedding"] for key in missing]), strict=True)
                )
            for key, raw in vectors.items():
                if raw:
                    pool.vector[pool.position[key]] = max(0.0, float(vector_from_bytes(raw) @ query_vector))
    if topics:
        for raw_key in next(replies)[1:]:
            filed = pool.position.get(raw_key.decode())
            if filed is not None:
                pool.topic[filed] = 1.0

    keys = np.asarray(pool.keys)
    scores = _score(pool, weights, now=now, topical=bool(topics), keys=keys)
    final = scores.final
    ranked: list[int] = np.lexsort((keys, -np.asarray(final))).tolist() if pool.keys else []
    # Scores are relative to the query (a short question scores lower against everything), so the
    # cut follows the best hit, with an absolute floor for queries nothing answers.
    cut = score_cut(threshold, relative, final[ranked[0]] if ranked else 0.0)
    chosen = [i for i in ranked if final[i] >= cut][:top_k]
    missed = [i for i in ranked if final[i] < cut][:near_misses]
    # Round trip 2: full fields only for what is returned.
    memories = load_memories([pool.keys[i] for i in chosen + missed])

    def hits(indexes: list[int]) -> list[SearchHit]:
        found = [(memories.get(pool.keys[i]), i) for i in indexes]
        return [SearchHit(memory, scores.breakdown(i)) for memory, i in found if memory is not None]

    return SearchResult(
        hits=hits(chosen),
        near_misses=hits(missed),
        threshold=threshold,
        mode=mode,
        took_ms=(time.perf_counter() - started) * 1000,
        relative_threshold=relative,
        cut=cut,
    )
