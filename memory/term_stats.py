"""How common each query word is in a scope, cached briefly: BM25 drops words most memories contain."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings

from memory.index import index_name
from memory.query import keyword_clause
from memory.raw_search import run_pipeline
from memory.search_params import SearchParams


@dataclass
class TermCounts:
    """How many of a scope's memories there are, and how many contain each word, as counted recently."""

    expires: float
    total: int
    per_term: dict[str, int]


# Word counts move slowly; a user's turns within a minute reuse them (saves a round trip per turn).
_term_counts: OrderedDict[str, TermCounts] = OrderedDict()
_term_counts_lock = threading.Lock()
TERM_COUNTS_TTL_SECONDS = 60.0
TERM_COUNTS_MAX_SCOPES = 10_000


def _cache_key(base: str, cache_key: str | None) -> str:
    # Per server too: tests, benches and the eval point one process at several Redis instances.
    return f"{settings.REDIS_URL} {cache_key or base}"


def _fresh_counts(key: str) -> TermCounts | None:
    with _term_counts_lock:
        counts = _term_counts.get(key)
    return counts if counts is not None and counts.expires >= time.monotonic() else None


def cached_word_counts(base: str, terms: list[str], *, cache_key: str | None = None) -> TermCounts | None:
    """The counts of this scope if fresh in the cache and covering every word; else None."""
    counts = _fresh_counts(_cache_key(base, cache_key))
    if counts is None or any(t not in counts.per_term for t in terms):
        return None
    return counts


def scope_word_counts(base: str, terms: list[str], *, cache_key: str | None = None) -> TermCounts:
    """The scope's size and each word's count (one pipelined count per word not cached yet)."""
    key = _cache_key(base, cache_key)
    counts = _fresh_counts(key)
    unknown = terms if counts is None else [t for t in terms if t not in counts.per_term]
    if counts is not None and not unknown:
        return counts
    replies = run_pipeline(
        [
            ["FT.SEARCH", index_name(), base, "LIMIT", 0, 0, "DIALECT", 2],
            *[
                ["FT.SEARCH", index_name(), f"{base} {keyword_clause([t])}", "LIMIT", 0, 0, "DIALECT", 2]
                for t in unknown
            ],
        ]
    )
    if counts is None:
        counts = TermCounts(
            expires=time.monotonic() + TERM_COUNTS_TTL_SECONDS, total=int(replies[0][0]), per_term={}
        )
    counts.per_term.update({t: int(reply[0]) for t, reply in zip(unknown, replies[1:], strict=True)})
    with _term_counts_lock:
        _term_counts[key] = counts
        _term_counts.move_to_end(key)
        while len(_term_counts) > TERM_COUNTS_MAX_SCOPES:
            _term_counts.popitem(last=False)
    return counts


def drop_common_terms(terms: list[str], counts: TermCounts, *, params: SearchParams) -> list[str]:
    """The words not in more than `common_term_share` of the scope (judged in large scopes only)."""
    if len(terms) < 2 or counts.total < params.common_term_min_memories:
        return terms
    per_term = [counts.per_term[t] for t in terms]
    share = params.common_term_share
    kept = [t for t, n in zip(terms, per_term, strict=True) if n <= share * counts.total]
    # All common: keep the rarest so the keyword signal is not simply gone.
    return kept or [min(zip(per_term, terms, strict=True))[1]]


def forget_term_counts() -> None:
    with _term_counts_lock:
        _term_counts.clear()
