"""The engine bench's data set: memories with precomputed vectors, spread over many users.

Embedding 100K sentences with all-MiniLM on 2 cores would take longer than the whole bench
budget (~100 sentences/s measured), so we embed a pool of distinct sentences once and give each
memory the vector of a pool sentence plus a little Gaussian noise, renormalised. The memory's
text is that pool sentence with one or two slots re-drawn, so text and vector stay about the
same thing, and every memory still has its own vector (HNSW and KNN see no exact duplicates).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from ulid import ULID

from bench.corpus import Corpus, Draft
from memory.services import NewMemory
from memory.types import Actor, ActorKind, Scope

DAY = 86400.0
# Per-dimension noise: with 384 dims, sigma 0.025 keeps cosine(memory, pool sentence) near 0.9.
NOISE_SIGMA = 0.025
# Memories are backdated up to this many days so recency scores differ.
MAX_AGE_DAYS = 180
PINNED_SHARE = 0.02
EXTRACTOR = Actor(ActorKind.EXTRACTOR, "bench-worker", model="bench-model", prompt_version="v1")


def embed_in_batches(
    texts: list[str], *, batch: int = 256, report: Callable[[str], None] | None = None
) -> tuple[np.ndarray, float]:
    """Embed with the product's embedder; returns the vectors and the measured sentences/s."""
    from core.embeddings import get_embedder

    embedder = get_embedder()
    parts = []
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        parts.append(embedder.embed(texts[start : start + batch]))
        if report:
            report(f"embedded {min(start + batch, len(texts))}/{len(texts)} sentences")
    seconds = time.perf_counter() - started
    return np.vstack(parts).astype(np.float32), len(texts) / seconds if seconds else 0.0


@dataclass
class VectorPool:
    drafts: list[Draft]
    vectors: np.ndarray
    embed_per_s: float


def build_pool(corpus: Corpus, size: int, report: Callable[[str], None]) -> VectorPool:
    drafts: list[Draft] = []
    seen: set[str] = set()
    while len(drafts) < size:
        draft = corpus.draft()
        text = draft.fact().text
        if text not in seen:
            seen.add(text)
            drafts.append(draft)
    vectors, per_s = embed_in_batches([d.fact().text for d in drafts], report=report)
    return VectorPool(drafts, vectors, per_s)


def user_ids(count: int) -> list[str]:
    return [f"user-{i:05d}" for i in range(count)]


@dataclass
class MemoryFactory:
    """Makes `NewMemory` batches; remembers who owns what so later phases can pick users."""

    corpus: Corpus
    pool: VectorPool
    users: list[str]
    seed: int
    per_user: Counter[str] = field(default_factory=Counter)
    made: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self.now = time.time()

    def _vectors(self, pool_rows: list[int]) -> np.ndarray:
        base = self.pool.vectors[pool_rows]
        noisy = base + self.np_rng.normal(0.0, NOISE_SIGMA, size=base.shape).astype(np.float32)
        return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)

    def batch(self, size: int) -> list[NewMemory]:
        rows = [self.rng.randrange(len(self.pool.drafts)) for _ in range(size)]
        vectors = self._vectors(rows)
        items = []
        for row, vector in zip(rows, vectors, strict=True):
            items.append(self._one(self.pool.drafts[row], vector))
        self.made += size
        return items

    def _one(self, draft: Draft, vector: np.ndarray) -> NewMemory:
        fact = self.corpus.vary(draft, changes=self.rng.choice((1, 2))).fact()
        user = self.rng.choice(self.users)
        self.per_user[user] += 1
        created = self.now - self.rng.uniform(0, MAX_AGE_DAYS) * DAY
        return NewMemory(
            text=fact.text,
            scope=Scope(user_id=user),
            type=fact.type,
            topics=list(fact.topics),
            entities=list(fact.entities),
            event_date=created - self.rng.uniform(0, 30) * DAY if fact.type == "episodic" else None,
            # The extractor records which chat message a memory came from.
            source=[str(ULID())],
            created_at=created,
            pinned=self.rng.random() < PINNED_SHARE,
            embedding=vector,
        )

    def users_near(self, count: int, wanted: int) -> list[str]:
        """`count` users whose memory count is closest to `wanted` (for the build_prompt bench)."""
        ranked = sorted(self.users, key=lambda u: (abs(self.per_user[u] - wanted), u))
        return ranked[:count]


@dataclass(frozen=True)
class Query:
    user_id: str
    text: str
    vector: np.ndarray


def build_queries(
    corpus: Corpus, users: list[str], count: int, seed: int, report: Callable[[str], None]
) -> tuple[list[Query], float]:
    """Distinct question texts, embedded up front (the search bench excludes embedding time)."""
    texts = [corpus.fresh_question() for _ in range(count)]
    vectors, per_s = embed_in_batches(texts, report=report)
    rng = random.Random(seed)
    queries = [Query(rng.choice(users), t, v) for t, v in zip(texts, vectors, strict=True)]
    return queries, per_s


def reassign_users(queries: list[Query], users: list[str], seed: int) -> list[Query]:
    """The same texts asked by other random users (each phase gets its own user sequence)."""
    rng = random.Random(seed)
    return [Query(rng.choice(users), q.text, q.vector) for q in queries]
