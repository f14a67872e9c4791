"""The knobs of a search (weights, cuts, candidate pools) as one value a caller can pass.

Defaults come from settings (`SearchParams.from_settings()`, read once per search, never per
candidate) and the tuned constants below; the eval and the experiments pass their own values
(`dataclasses.replace(SearchParams.from_settings(), threshold=0.2)`) instead of patching module
globals or overriding settings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from memory.types import InvalidInput

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
COMMON_TERM_MIN_MEMORIES = 50
# The topic bonus lifts extracted facts only: raw turns filed by a lexicon drowned the facts
# (LoCoMo end to end R@10 71.0 -> 65.4 at weight 0.2 with raw turns, 70.7 with facts only; the
# persona suites answer as many questions or more with facts only).
TOPIC_TYPES: tuple[str, ...] | None = ("semantic", "episodic", "procedural")
# Keys the topic query may return (NOCONTENT: ids only); it is not limited to the candidate pool.
TOPIC_CANDIDATES = 1000

# Hits a search may return; config/settings.py bounds RETRIEVAL_TOP_K by the same number.
MAX_TOP_K = 100


def check_top_k(top_k: int) -> None:
    """The one bound on how many hits a search returns (params and a caller's own top_k alike)."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}")


_POSITIVE = ("recency_half_life_days", "min_candidates", "max_candidates", "keyword_candidates")


@dataclass(frozen=True)
class SearchParams:
    """Everything that decides what a search returns and how it scores, besides its query."""

    vector_weight: float
    keyword_weight: float
    recency_weight: float
    recency_half_life_days: float
    session_weight: float
    neighbour_weight: float
    topic_weight: float
    # A hit is returned when final >= max(threshold, relative_threshold x best).
    threshold: float
    relative_threshold: float
    top_k: int
    near_misses: int
    min_candidates: int = MIN_CANDIDATES
    max_candidates: int = MAX_CANDIDATES
    keyword_candidates: int = KEYWORD_CANDIDATES
    topic_candidates: int = TOPIC_CANDIDATES
    # Types the topic bonus lifts (None: every type).
    topic_types: tuple[str, ...] | None = TOPIC_TYPES
    common_term_share: float = COMMON_TERM_SHARE
    common_term_min_memories: int = COMMON_TERM_MIN_MEMORIES

    def __post_init__(self) -> None:
        for name in _NUMBERS:
            value: Any = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidInput(f"search parameter {name} must be a number >= 0, not {value!r}")
            if name in _POSITIVE and value <= 0:
                raise InvalidInput(f"search parameter {name} must be above 0")
        check_top_k(self.top_k)

    @classmethod
    def from_settings(cls) -> SearchParams:
        """Today's settings (override_settings included); the tuned constants for the rest.

        Built once and kept until a setting changes (Django's `setting_changed`, which
        override_settings sends): every search asks for it, and building it costs ~25 µs."""
        cached = _CACHE.params
        if cached is not None:
            return cached
        generation = _CACHE.generation
        params = cls._read_settings()
        with _CACHE_LOCK:
            # A setting changed while they were read: they may be stale, so they are not kept.
            if _CACHE.generation == generation:
                _CACHE.params = params
        return params

    @classmethod
    def _read_settings(cls) -> SearchParams:
        return cls(
            vector_weight=settings.HYBRID_VECTOR_WEIGHT,
            keyword_weight=settings.HYBRID_KEYWORD_WEIGHT,
            recency_weight=settings.RECENCY_WEIGHT,
            recency_half_life_days=settings.RECENCY_HALF_LIFE_DAYS,
            session_weight=settings.RETRIEVAL_SESSION_WEIGHT,
            neighbour_weight=settings.RETRIEVAL_NEIGHBOUR_WEIGHT,
            topic_weight=settings.RETRIEVAL_TOPIC_WEIGHT,
            threshold=settings.RETRIEVAL_THRESHOLD,
            relative_threshold=settings.RETRIEVAL_RELATIVE_THRESHOLD,
            top_k=settings.RETRIEVAL_TOP_K,
            near_misses=settings.RETRIEVAL_NEAR_MISSES,
        )


# Checked on every construction (once per search): the names, not `fields()` each time.
_NUMBERS = tuple(f.name for f in fields(SearchParams) if f.name != "topic_types")


class _Cache:
    """from_settings()'s value, and how many times a setting changed: params read while one changed
    are not stored, or they would be served until the next change."""

    params: SearchParams | None = None
    generation = 0


_CACHE = _Cache()
_CACHE_LOCK = threading.Lock()


@receiver(setting_changed)
def _forget_params_from_settings(**kwargs: Any) -> None:
    with _CACHE_LOCK:
        _CACHE.generation += 1
        _CACHE.params = None
