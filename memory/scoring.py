"""How a search scores its candidates (the weights, the cut) and how the inspector explains a score."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
from django.conf import settings

from memory.types import ScoreBreakdown

SearchMode = Literal["semantic", "keyword", "hybrid"]
SEARCH_MODES: tuple[SearchMode, ...] = ("semantic", "keyword", "hybrid")
# BM25 scores are unbounded; squash them as s / (s + K) so they mix with cosine similarity.
# RediSearch's BM25 scores for these short texts are ~0.1-1 (median best match 0.55 on LoCoMo), so a
# small K keeps the keyword signal in range: K=4 capped it near 0.2 (recall@10 42.5 -> 53.2 with 0.5).
BM25_SATURATION = 0.5


@dataclass(frozen=True)
class Weights:
    """The scoring knobs, read from settings once per search (not once per candidate)."""

    vector: float
    keyword: float
    recency: float
    half_life_days: float
    session: float
    neighbour: float
    topic: float

    @classmethod
    def for_mode(cls, mode: SearchMode) -> Weights:
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
    def from_dict(cls, data: dict[str, float], *, mode: SearchMode) -> Weights:
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


def score_cut(floor: float, relative: float, best: float) -> float:
    return max(floor, relative * best)


def chat_cut(best: float) -> float:
    """The score a memory needs to be recalled in a chat, given the best score of its search."""
    return round(score_cut(settings.RETRIEVAL_THRESHOLD, settings.RETRIEVAL_RELATIVE_THRESHOLD, best), 4)


def scoring_weights() -> dict[str, float]:
    """The weights a hybrid search scores with, as traces and reports show them."""
    return Weights.for_mode("hybrid").as_dict()


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
    """The final score of a hit as the engine computed it (`Weights.match` and `.final`), with this
    hit's numbers. `weights` are the ones a trace saved; without them, today's settings for `mode`."""
    values = asdict(score) if isinstance(score, ScoreBreakdown) else dict(score)
    final = float(values.get("final") or 0.0)
    if reason == "pinned":
        return ScoreExplanation(kind="pinned", steps=[], final=final)
    if reason == "profile" or mode == "profile":
        return ScoreExplanation(kind="profile", steps=[], final=float(values.get("importance") or final))
    w = Weights.from_dict(weights, mode=mode) if weights else Weights.for_mode(mode)  # type: ignore[arg-type]
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
