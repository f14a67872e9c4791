"""LoCoMo retrieval evaluation: how well does the memory engine find the turns that answer a question?

Each LoCoMo conversation becomes one user whose dialog turns are `message` memories; every question
goes through `search_memories` and we measure evidence recall@k (the LoCoMo paper's retrieval
metric), the tokens the chat would inject for the retrieved memories, and search latency.

The data set (CC BY-NC 4.0) is an evaluation input read from `../shared/data/`; it is never copied
into the repository or the package. See `../shared/data/README.md` for its format and quirks.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

import numpy as np
from django.conf import settings
from django.test import override_settings

from core.embedded_redis import EmbeddedRedis, free_port, loaded_modules
from core.embeddings import get_embedder
from core.machine import cpu_model
from core.redis_client import get_redis, pointed_at
from memory import scoring, search, tokens
from memory.prompt import MEMORY_HEADER, _memory_line
from memory.query import MemoryFilter, validate_scope_id
from memory.scoring import SearchMode
from memory.search import search_memories
from memory.services import NewMemory, add_memories
from memory.types import Actor, ActorKind, InvalidInput, Memory, MemoryType, Scope, SearchHit

# The paper's numbering (confirmed by its per-category counts); several harnesses get it wrong.
CATEGORIES: dict[int, str] = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}
K_VALUES: tuple[int, ...] = (5, 10, 25)
# The chat injects the top memories of a hybrid search; 10 is the context we price in tokens.
CONTEXT_K = 10
# Turns of one session share its timestamp; a few seconds apart keeps their order for recency.
TURN_SPACING_SECONDS = 5.0
# The chat's own scope (memory/prompt.py builds the same filter).
AGENT_ID = "engram"
NAMESPACE = "default"
EVAL_ACTOR = Actor(ActorKind.SYSTEM, "locomo-eval")

# Published anchors we compare against (see ../shared/data/README.md).
ANCHORS: dict[str, Any] = {
    "locomo_paper_dragon_turns": {
        "source": "Maharana et al. 2024 (LoCoMo), Table 3, DRAGON retriever over dialog turns",
        "recall_at_5": 56.7,
        "recall_at_10": 66.2,
        "recall_at_25": 76.7,
        "recall_at_50": 82.7,
    },
    "full_history_tokens_per_conversation": {
        "source": "../shared/data/README.md (cl100k_base, 'Speaker: text' lines with session headers)",
        "tokens": 20_500,
    },
    "mem0_context_tokens_per_question": {
        "source": "Mem0 paper (Chhikara et al. 2025), LoCoMo, tokens of retrieved memory context",
        "tokens": 1_764,
    },
}


# --- Parsing ------------------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, name in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        start=1,
    )
}
# "1:56 pm on 8 May, 2023". Parsed by hand: strptime's %p and %B depend on the process locale.
_SESSION_TIME = re.compile(
    r"\s*(\d{1,2}):(\d{2})\s*([ap])\.?m\.?\s+on\s+(\d{1,2})\s+([a-z]+),?\s+(\d{4})\s*", re.IGNORECASE
)
# "D8:6", and the typo "D:11:26"; leading zeros ("D30:05") are dropped when rebuilding the id.
_DIA_ID = re.compile(r"D:?(\d+):(\d+)")
_EVIDENCE_SEPARATORS = re.compile(r"[;,\s]+")
_SESSION_KEY = re.compile(r"session_(\d+)")


def parse_session_time(text: str) -> float:
    """Epoch seconds (UTC) of a LoCoMo session time like "1:56 pm on 8 May, 2023"."""
    match = _SESSION_TIME.fullmatch(text)
    if not match:
        raise ValueError(f"unrecognised LoCoMo session time {text!r}")
    hour, minute, half, day, month_name, year = match.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None or not 1 <= int(hour) <= 12:
        raise ValueError(f"unrecognised LoCoMo session time {text!r}")
    # 12-hour clock: 12:xx am is just after midnight, 12:xx pm just after noon.
    hour24 = int(hour) % 12 + (12 if half.lower() == "p" else 0)
    return datetime(int(year), month, int(day), hour24, int(minute), tzinfo=UTC).timestamp()


def normalise_dia_id(piece: str) -> str | None:
    """The canonical "D<session>:<turn>" form of one evidence id, or None when it is not an id."""
    match = _DIA_ID.fullmatch(piece.strip())
    if not match:
        return None
    return f"D{int(match.group(1))}:{int(match.group(2))}"


def split_evidence(raw: Iterable[str]) -> list[str]:
    """The individual pieces of an evidence list; some entries hold several ids ("D8:6; D9:17")."""
    return [piece for entry in raw for piece in _EVIDENCE_SEPARATORS.split(entry) if piece]


@dataclass(frozen=True)
class Evidence:
    ids: tuple[str, ...]  # normalised ids of turns that exist, in order, without duplicates
    skipped: tuple[str, ...]  # raw pieces that are no id ("D") or point at no turn ("D10:19")


def resolve_evidence(raw: Iterable[str], known_ids: Iterable[str]) -> Evidence:
    known = set(known_ids)
    ids: list[str] = []
    skipped: list[str] = []
    for piece in split_evidence(raw):
        dia_id = normalise_dia_id(piece)
        if dia_id is None or dia_id not in known:
            skipped.append(piece)
        elif dia_id not in ids:  # a repeated id would count one turn twice
            ids.append(dia_id)
    return Evidence(tuple(ids), tuple(skipped))


def turn_text(speaker: str, text: str, caption: str = "") -> str:
    """How a turn is stored and embedded: "Speaker: text [shares a photo of …]"."""
    parts = [text.strip()]
    if caption.strip():
        # Image turns only make sense with the picture; BLIP's caption is the data set's stand-in.
        parts.append(f"[shares {caption.strip()}]")
    return f"{speaker}: {' '.join(p for p in parts if p)}"


@dataclass(frozen=True)
class Turn:
    dia_id: str
    speaker: str
    text: str  # the stored memory text, see `turn_text`
    timestamp: float


@dataclass(frozen=True)
class Session:
    number: int
    date_text: str
    timestamp: float
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Question:
    question: str
    category: int
    evidence: Evidence

    @property
    def category_name(self) -> str:
        return CATEGORIES[self.category]


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]

    @property
    def turns(self) -> list[Turn]:
        return [turn for session in self.sessions for turn in session.turns]

    @property
    def end_time(self) -> float:
        """When the conversation ends: the time of its last turn."""
        return self.sessions[-1].turns[-1].timestamp


def _parse_session(number: int, date_text: str, raw_turns: Sequence[Mapping[str, Any]]) -> Session:
    start = parse_session_time(date_text)
    turns = tuple(
        Turn(
            dia_id=str(raw["dia_id"]),
            speaker=str(raw["speaker"]),
            text=turn_text(str(raw["speaker"]), str(raw.get("text", "")), str(raw.get("blip_caption", ""))),
            timestamp=start + i * TURN_SPACING_SECONDS,
        )
        for i, raw in enumerate(raw_turns)
    )
    return Session(number=number, date_text=date_text, timestamp=start, turns=turns)


def _parse_sessions(conversation: Mapping[str, Any]) -> tuple[Session, ...]:
    sessions = []
    for key_name, value in conversation.items():
        match = _SESSION_KEY.fullmatch(key_name)
        # Some conversations list dates of sessions that have no turns (conv-26 lists 35, has 19).
        if match and isinstance(value, list) and value:
            number = int(match.group(1))
            sessions.append(_parse_session(number, str(conversation[f"{key_name}_date_time"]), value))
    return tuple(sorted(sessions, key=lambda s: s.number))


def parse_conversation(raw: Mapping[str, Any]) -> Conversation:
    # The sample id becomes the user id (and part of each session id): say so now rather than fail
    # halfway through a load.
    try:
        validate_scope_id(str(raw["sample_id"]), name="sample_id")
    except InvalidInput as exc:
        raise ValueError(f"conversation {raw['sample_id']!r} cannot be a user id: {exc}") from exc
    sessions = _parse_sessions(raw["conversation"])
    if not sessions:
        raise ValueError(f"conversation {raw.get('sample_id')!r} has no turns")
    known = [turn.dia_id for session in sessions for turn in session.turns]
    questions = tuple(
        Question(
            question=str(item["question"]),
            category=int(item["category"]),
            evidence=resolve_evidence(item.get("evidence") or [], known),
        )
        for item in raw.get("qa", [])
    )
    unknown = {q.category for q in questions} - CATEGORIES.keys()
    if unknown:
        raise ValueError(f"unknown question categories {sorted(unknown)} in {raw.get('sample_id')!r}")
    return Conversation(sample_id=str(raw["sample_id"]), sessions=sessions, questions=questions)


def load_locomo(path: Path) -> list[Conversation]:
    """The conversations of locomo10.json; FileNotFoundError says where the file was expected."""
    if not path.is_file():
        raise FileNotFoundError(
            f"LoCoMo data not found at {path}. It is read from ../shared/data/locomo/locomo10.json "
            "(see ../shared/data/README.md); pass --data PATH to use another copy."
        )
    return [parse_conversation(item) for item in json.loads(path.read_text())]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- Metrics ------------------------------------------------------------------------------------


def evidence_recall(retrieved: Sequence[str], evidence: Sequence[str], k: int) -> float:
    """Share of the evidence dia_ids among the top-k retrieved ones; 1.0 without evidence
    (the official LoCoMo definition, task_eval/evaluation.py)."""
    if not evidence:
        return 1.0
    top = set(retrieved[:k])
    return sum(1 for dia_id in evidence if dia_id in top) / len(evidence)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else 0.0


def memory_context(memories: Sequence[Memory]) -> str:
    """The memory block exactly as the chat injects it into the system prompt (memory/prompt.py)."""
    return MEMORY_HEADER + "\n" + "\n".join(_memory_line(m) for m in memories)


def full_history_text(conversation: Conversation) -> str:
    """The whole conversation as a no-memory agent would send it: a date header per session and
    one "Speaker: text" line per turn."""
    return "\n\n".join(
        f"Session {s.number} ({s.date_text}):\n" + "\n".join(t.text for t in s.turns)
        for s in conversation.sessions
    )


# --- Progress -----------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal; a single summary line when output is not a TTY."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None, width: int = 28) -> None:
        self.label, self.total, self.width = label, max(total, 1), width
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._tty = self.stream.isatty()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self._tty and (now - self._last_draw >= 0.1 or self.done >= self.total):
            self._last_draw = now
            self.stream.write("\r" + self._line(now))
            self.stream.flush()

    def _line(self, now: float) -> str:
        filled = int(self.width * min(self.done, self.total) / self.total)
        elapsed = now - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        bar = "#" * filled + "." * (self.width - filled)
        return f"{self.label:<22} [{bar}] {self.done}/{self.total} {elapsed:5.0f}s eta {eta:4.0f}s"

    def close(self) -> None:
        now = time.perf_counter()
        self.stream.write(("\r" if self._tty else "") + self._line(now).replace(" eta    0s", "") + "\n")
        self.stream.flush()


ProgressFactory = Callable[[str, int], Progress]


# --- The engine under test ----------------------------------------------------------------------


@contextmanager
def private_redis() -> Iterator[EmbeddedRedis]:
    """A throw-away embedded Redis for the evaluation: never the user's `.state/` data."""
    with (
        tempfile.TemporaryDirectory(prefix="engram-locomo-") as data_dir,
        EmbeddedRedis(port=free_port(), data_dir=Path(data_dir)) as server,
        pointed_at(server.url, channel_prefix="locomo:asgi"),
    ):
        yield server


def _chunks(items: Sequence[NewMemory], size: int) -> Iterator[Sequence[NewMemory]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def session_id(conversation: Conversation, session: Session) -> str:
    """The chat session a LoCoMo session stands for (turns of one session share it, as in the chat)."""
    return f"{conversation.sample_id}-s{session.number}"


def load_into_engine(
    conversations: Sequence[Conversation], *, progress: Progress | None = None, batch_size: int = 128
) -> dict[str, str]:
    """Every turn becomes a `message` memory of its conversation's user; returns memory id → dia_id.

    `add_memories` embeds each batch once with the configured embedder (the local one by default).
    """
    dia_ids: dict[str, str] = {}
    for conversation in conversations:
        items = [
            NewMemory(
                text=turn.text,
                scope=Scope(
                    user_id=conversation.sample_id,
                    agent_id=AGENT_ID,
                    namespace=NAMESPACE,
                    session_id=session_id(conversation, session),
                ),
                type=MemoryType.MESSAGE,
                source=[turn.dia_id],
                created_at=turn.timestamp,
            )
            for session in conversation.sessions
            for turn in session.turns
        ]
        for chunk in _chunks(items, batch_size):
            added = add_memories(items=chunk, actor=EVAL_ACTOR, reason="LoCoMo evaluation")
            for memory, item in zip(added, chunk, strict=True):
                dia_ids[memory.id] = item.source[0]
            if progress:
                progress.advance(len(chunk))
    return dia_ids


@dataclass(frozen=True)
class RunSpec:
    """One retrieval configuration. `settings` and `selectors_patches` are applied only while the
    run searches, so experiments never change the engine's defaults."""

    name: str
    mode: SearchMode
    description: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    selectors_patches: Mapping[str, Any] = field(default_factory=dict)
    # How many results to ask for; recall@k takes the first k. More widens the candidate pool.
    top_k: int = max(K_VALUES)


# Baselines switch recency and the conversation context off so they measure one signal each.
_ONE_SIGNAL = {"RECENCY_WEIGHT": 0.0, "RETRIEVAL_SESSION_WEIGHT": 0.0, "RETRIEVAL_NEIGHBOUR_WEIGHT": 0.0}
DEFAULT_RUNS: tuple[RunSpec, ...] = (
    RunSpec(
        "hybrid",
        "hybrid",
        "engine default: vector + BM25 + recency (now = end of conversation) + conversation context",
    ),
    RunSpec(
        "hybrid-no-context",
        "hybrid",
        "the default without the session/neighbour context: its effect as a delta",
        settings={"RETRIEVAL_SESSION_WEIGHT": 0.0, "RETRIEVAL_NEIGHBOUR_WEIGHT": 0.0},
    ),
    RunSpec("vector", "semantic", "semantic mode only, recency and context off", settings=_ONE_SIGNAL),
    RunSpec("bm25", "keyword", "keyword (BM25) mode only, recency and context off", settings=_ONE_SIGNAL),
)


@contextmanager
def applied(spec: RunSpec) -> Iterator[None]:
    with ExitStack() as stack:
        if spec.settings:
            stack.enter_context(override_settings(**spec.settings))
        for name, value in spec.selectors_patches.items():
            if not hasattr(search, name):
                raise AttributeError(f"memory.search has no {name!r} to override")
            stack.enter_context(mock.patch.object(search, name, value))
        yield


@dataclass(frozen=True)
class ContextCost:
    """What the retrieved memories cost in prompt tokens."""

    tokens_by_k: dict[int, int]  # the memory block for the top k, for each k in K_VALUES
    tokens_at_threshold: int  # top-CONTEXT_K without the hits under RETRIEVAL_THRESHOLD (0 if none)
    memories_at_threshold: int


@dataclass
class QuestionResult:
    sample_id: str
    category: int
    retrieved: list[str]  # dia_ids, best first
    recall: dict[int, float]
    search_ms: float | None  # as the chat calls it: the question is embedded inside the search
    search_ms_precomputed: float | None  # with the question vector passed in (keyword: same call)
    context: ContextCost | None = None  # measured for the headline run only


@dataclass
class RunResult:
    spec: RunSpec
    questions: list[QuestionResult]


def _search(
    conversation: Conversation,
    question: Question,
    spec: RunSpec,
    *,
    query_vector: np.ndarray | None = None,
) -> tuple[list[SearchHit], float]:
    filter_ = MemoryFilter.build(user_id=conversation.sample_id, agent_id=AGENT_ID, namespace=NAMESPACE)
    started = time.perf_counter()
    # threshold 0: recall@k always looks at exactly k turns (every user here has hundreds).
    result = search_memories(
        filter=filter_,
        text=question.question,
        mode=spec.mode,
        top_k=spec.top_k,
        threshold=0.0,
        relative_threshold=0.0,
        near_misses=0,
        query_vector=query_vector,
        now=conversation.end_time,
    )
    return result.hits, (time.perf_counter() - started) * 1000


def _ask(
    conversation: Conversation,
    question: Question,
    spec: RunSpec,
    vector: np.ndarray | None,
    *,
    embed_inside: bool,
) -> tuple[list[SearchHit], float | None, float | None]:
    """Hits, then the search time as the chat pays it (embedding included) and without embedding.
    A time that was not measured is None."""
    if spec.mode == "keyword":  # nothing to embed: one call measures both
        hits, took = _search(conversation, question, spec)
        return hits, took, took
    if vector is None:
        hits, took = _search(conversation, question, spec)
        return hits, took, None
    if not embed_inside:
        hits, took = _search(conversation, question, spec, query_vector=vector)
        return hits, None, took
    hits, took = _search(conversation, question, spec)
    return hits, took, _search(conversation, question, spec, query_vector=vector)[1]


def context_cost(hits: Sequence[SearchHit]) -> ContextCost:
    """Tokens of the memory block for the top k hits, and of the top-CONTEXT_K block once the chat's
    default threshold has dropped weak hits (the eval itself retrieves with threshold 0)."""
    kept = [h for h in hits[:CONTEXT_K] if h.score.final >= settings.RETRIEVAL_THRESHOLD]
    return ContextCost(
        tokens_by_k={k: tokens.count(memory_context([h.memory for h in hits[:k]])) for k in K_VALUES},
        tokens_at_threshold=tokens.count(memory_context([h.memory for h in kept])) if kept else 0,
        memories_at_threshold=len(kept),
    )


def run_questions(
    spec: RunSpec,
    conversations: Sequence[Conversation],
    dia_ids: Mapping[str, str],
    *,
    question_vectors: Mapping[tuple[str, int], np.ndarray] | None = None,
    embed_inside: bool = True,
    measure_context: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Ask every question. With `embed_inside` the search embeds the question itself (the chat's
    path); with `question_vectors` a second search with the precomputed vector is timed too. Without
    `embed_inside` only the precomputed-vector search runs: the fast path for experiments.
    Recall comes from the first search."""
    results: list[QuestionResult] = []
    with applied(spec):
        for conversation in conversations:
            for index, question in enumerate(conversation.questions):
                vector = (question_vectors or {}).get((conversation.sample_id, index))
                hits, search_ms, precomputed_ms = _ask(
                    conversation, question, spec, vector, embed_inside=embed_inside
                )
                retrieved = [dia_ids[h.memory.id] for h in hits]
                result = QuestionResult(
                    sample_id=conversation.sample_id,
                    category=question.category,
                    retrieved=retrieved,
                    recall={k: evidence_recall(retrieved, question.evidence.ids, k) for k in K_VALUES},
                    search_ms=search_ms,
                    search_ms_precomputed=precomputed_ms,
                )
                if measure_context:
                    result.context = context_cost(hits)
                results.append(result)
                if progress:
                    progress.advance()
    return RunResult(spec=spec, questions=results)


def embed_questions(
    conversations: Sequence[Conversation], *, batch_size: int = 256, progress: Progress | None = None
) -> dict[tuple[str, int], np.ndarray]:
    """Question vectors in batches, keyed by (sample_id, question index)."""
    keys = [(c.sample_id, i) for c in conversations for i in range(len(c.questions))]
    texts = [q.question for c in conversations for q in c.questions]
    vectors: dict[tuple[str, int], np.ndarray] = {}
    for start in range(0, len(texts), batch_size):
        batch = get_embedder().embed(texts[start : start + batch_size])
        vectors.update(zip(keys[start : start + batch_size], batch, strict=True))
        if progress:
            progress.advance(len(batch))
    return vectors


# --- Summaries ----------------------------------------------------------------------------------


def _mean_percent(values: Iterable[float]) -> float:
    values = list(values)
    return round(100 * sum(values) / len(values), 1) if values else 0.0


def summarise_recall(questions: Sequence[QuestionResult]) -> dict[str, Any]:
    by_category: dict[str, dict[str, float]] = {}
    for number, name in CATEGORIES.items():
        subset = [q for q in questions if q.category == number]
        by_category[name] = {f"recall_at_{k}": _mean_percent(q.recall[k] for q in subset) for k in K_VALUES}
    return {
        **{f"recall_at_{k}": _mean_percent(q.recall[k] for q in questions) for k in K_VALUES},
        "by_category": by_category,
        "questions": len(questions),
    }


def summarise_latency(questions: Sequence[QuestionResult]) -> dict[str, float]:
    with_embedding = [q.search_ms for q in questions if q.search_ms is not None]
    precomputed = [q.search_ms_precomputed for q in questions if q.search_ms_precomputed is not None]
    return {
        "search_p50_ms": round(percentile(with_embedding, 50), 2),
        "search_p95_ms": round(percentile(with_embedding, 95), 2),
        "search_p50_ms_without_embedding": round(percentile(precomputed, 50), 2),
        "search_p95_ms_without_embedding": round(percentile(precomputed, 95), 2),
    }


def summarise_run(run: RunResult) -> dict[str, Any]:
    return {
        "mode": run.spec.mode,
        "description": run.spec.description,
        "overrides": {**run.spec.settings, **run.spec.selectors_patches},
        **summarise_recall(run.questions),
        **summarise_latency(run.questions),
    }


def summarise_tokens(run: RunResult, conversations: Sequence[Conversation]) -> dict[str, Any]:
    costs = [q.context for q in run.questions if q.context is not None]
    per_question = [c.tokens_by_k[CONTEXT_K] for c in costs]
    at_threshold = [c.tokens_at_threshold for c in costs]
    kept = [c.memories_at_threshold for c in costs]
    full = [tokens.count(full_history_text(c)) for c in conversations]
    mean = float(np.mean(per_question)) if per_question else 0.0
    full_mean = float(np.mean(full)) if full else 0.0
    return {
        "tokens_exact": tokens.exact_counts_available(),
        "encoding": tokens.ENCODING,
        "context_memories": CONTEXT_K,
        "tokens_per_question_mean": round(mean, 1),
        "tokens_per_question_p50": round(percentile(per_question, 50), 1),
        "tokens_per_question_p95": round(percentile(per_question, 95), 1),
        # The whole curve, so recall@25 can be read against its token cost too.
        "tokens_per_question_mean_by_k": {
            str(k): round(float(np.mean([c.tokens_by_k[k] for c in costs])), 1) if costs else 0.0
            for k in K_VALUES
        },
        "full_history_tokens_mean": round(full_mean, 1),
        "full_history_tokens_by_conversation": {
            c.sample_id: n for c, n in zip(conversations, full, strict=True)
        },
        "token_saving_percent": round(100 * (1 - mean / full_mean), 1) if full_mean else 0.0,
        "at_default_threshold": {
            "threshold": settings.RETRIEVAL_THRESHOLD,
            "tokens_per_question_mean": round(float(np.mean(at_threshold)), 1) if at_threshold else 0.0,
            "memories_per_question_mean": round(float(np.mean(kept)), 2) if kept else 0.0,
        },
    }


def data_summary(conversations: Sequence[Conversation], path: Path) -> dict[str, Any]:
    questions = [q for c in conversations for q in c.questions]
    # Where, not what: the results are committed, the (non-commercial) data set must not be.
    skipped = [
        {"sample_id": c.sample_id, "qa_index": i, "evidence": list(q.evidence.skipped)}
        for c in conversations
        for i, q in enumerate(c.questions)
        if q.evidence.skipped
    ]
    return {
        "file": path.name,
        "sha256": file_sha256(path),
        "conversations": len(conversations),
        "sessions": sum(len(c.sessions) for c in conversations),
        "turns": sum(len(c.turns) for c in conversations),
        "questions": len(questions),
        "questions_by_category": {
            name: sum(1 for q in questions if q.category == number) for number, name in CATEGORIES.items()
        },
        "questions_without_evidence": sum(1 for q in questions if not q.evidence.ids),
        "skipped_evidence_ids": skipped,
    }


def machine_info() -> dict[str, Any]:
    import torch

    modules = loaded_modules(get_redis())
    embedder = get_embedder()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        # The engine sets this from EMBEDDING_THREADS when it loads the model.
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis": get_redis().info("server").get("redis_version"),
        "redisearch": modules.get("search"),
        "embedder": f"{embedder.provider}:{embedder.model} ({embedder.dims} dims)",
    }


def setup_summary() -> dict[str, Any]:
    return {
        "memory_text": "'Speaker: text [shares <BLIP caption>]' per turn, type message",
        "users": "one per conversation (user_id = sample_id)",
        "created_at": f"session time + {TURN_SPACING_SECONDS:g}s per turn (keeps turn order)",
        "recency_now": "end of the conversation (its last turn), so recency ranks within the conversation",
        "top_k": max(K_VALUES),
        "recall_at_k": "first k of one top-25 search per question",
        "threshold": 0.0,
        "weights": scoring.scoring_weights(),
        "sessions": "each LoCoMo session is one chat session (session_id), for the conversation context",
        "bm25_saturation": scoring.BM25_SATURATION,
        # getattr: older engine settings had no such knobs (HNSW float32 then).
        "vector_index": f"{getattr(settings, 'VECTOR_INDEX_ALGORITHM', 'hnsw')} "
        f"{getattr(settings, 'VECTOR_DTYPE', 'float32')}",
        "candidates": {
            "min": search.MIN_CANDIDATES,
            "max": search.MAX_CANDIDATES,
            "keyword": search.KEYWORD_CANDIDATES,
        },
        "baselines": "vector = semantic mode, bm25 = keyword mode, both with recency and context weights 0",
    }


# --- The whole evaluation -----------------------------------------------------------------------


@dataclass
class Evaluation:
    conversations: list[Conversation]
    runs: list[RunResult]
    load_seconds: float
    report: dict[str, Any]


def _stage(progress_factory: ProgressFactory | None, label: str, total: int) -> Progress | None:
    return progress_factory(label, total) if progress_factory else None


def _close(progress: Progress | None) -> None:
    if progress:
        progress.close()


def evaluate(
    data_path: Path,
    *,
    runs: Sequence[RunSpec] = DEFAULT_RUNS,
    progress_factory: ProgressFactory | None = None,
) -> Evaluation:
    """Load LoCoMo into the engine (in the Redis `settings.REDIS_URL` points at) and run every spec.
    The first run is the headline one: its top-10 context is priced in tokens."""
    started = time.perf_counter()
    conversations = load_locomo(data_path)
    turns = sum(len(c.turns) for c in conversations)
    progress = _stage(progress_factory, "load + embed turns", turns)
    dia_ids = load_into_engine(conversations, progress=progress)
    _close(progress)
    load_seconds = time.perf_counter() - started

    questions = sum(len(c.questions) for c in conversations)
    progress = _stage(progress_factory, "embed questions", questions)
    vectors = embed_questions(conversations, progress=progress)
    _close(progress)

    results: list[RunResult] = []
    for position, spec in enumerate(runs):
        progress = _stage(progress_factory, f"search: {spec.name}", questions)
        results.append(
            run_questions(
                spec,
                conversations,
                dia_ids,
                question_vectors=vectors,
                measure_context=position == 0,
                progress=progress,
            )
        )
        _close(progress)

    report = build_report(data_path, conversations, results, load_seconds=load_seconds)
    report["run_time_seconds"] = round(time.perf_counter() - started, 1)
    return Evaluation(conversations=conversations, runs=results, load_seconds=load_seconds, report=report)


def build_report(
    data_path: Path,
    conversations: Sequence[Conversation],
    runs: Sequence[RunResult],
    *,
    load_seconds: float,
) -> dict[str, Any]:
    headline, *others = runs
    main = summarise_run(headline)
    return {
        "benchmark": "LoCoMo evidence retrieval over dialog turns (locomo10.json, all 5 categories)",
        "date": datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "data": data_summary(conversations, data_path),
        "setup": setup_summary(),
        "categories": {str(n): name for n, name in CATEGORIES.items()},
        "recall_at_5_overall": main["recall_at_5"],
        "recall_at_10_overall": main["recall_at_10"],
        "recall_at_25_overall": main["recall_at_25"],
        "recall_at_10_by_category": {n: v["recall_at_10"] for n, v in main["by_category"].items()},
        **summarise_tokens(headline, conversations),
        **summarise_latency(headline.questions),
        "load_and_embed_seconds": round(load_seconds, 1),
        "runs": {run.spec.name: summarise_run(run) for run in runs},
        "baselines": {run.spec.name: summarise_run(run) for run in others},
        "anchors": ANCHORS,
    }


# --- Rendering ----------------------------------------------------------------------------------


def _run_rows(report: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for name, run in report["runs"].items():
        cats = [f"{run['by_category'][c]['recall_at_10']:.1f}" for c in CATEGORIES.values()]
        rows.append(
            [
                name,
                f"{run['recall_at_5']:.1f}",
                f"{run['recall_at_10']:.1f}",
                f"{run['recall_at_25']:.1f}",
                *cats,
                f"{run['search_p50_ms']:.1f} / {run['search_p95_ms']:.1f}",
                f"{run['search_p50_ms_without_embedding']:.1f} / "
                f"{run['search_p95_ms_without_embedding']:.1f}",
            ]
        )
    dragon = report["anchors"]["locomo_paper_dragon_turns"]
    rows.append(
        [
            "DRAGON (LoCoMo paper)",
            f"{dragon['recall_at_5']:.1f}",
            f"{dragon['recall_at_10']:.1f}",
            f"{dragon['recall_at_25']:.1f}",
            *(["-"] * len(CATEGORIES)),
            "-",
            "-",
        ]
    )
    return rows


def _run_headers(report: Mapping[str, Any]) -> list[str]:
    counts = report["data"]["questions_by_category"]
    cats = [f"R@10 {n} {name} ({counts[name]})" for n, name in CATEGORIES.items()]
    return ["run", "R@5", "R@10", "R@25", *cats, "ms p50 / p95", "ms p50 / p95 excl. embedding"]


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: Mapping[str, Any]) -> str:
    machine, data, setup = report["machine"], report["data"], report["setup"]
    weights = setup["weights"]
    mem0 = report["anchors"]["mem0_context_tokens_per_question"]["tokens"]
    full_anchor = report["anchors"]["full_history_tokens_per_conversation"]["tokens"]
    at_threshold = report["at_default_threshold"]
    by_k = report["tokens_per_question_mean_by_k"]
    return "\n".join(
        [
            "## LoCoMo retrieval",
            "",
            f"{report['date']} · {machine['cpu']}, {machine['cores']} cores "
            f"(torch threads: {machine['torch_threads']}) · "
            f"Redis {machine['redis']} + RediSearch {machine['redisearch']} · "
            f"{machine['embedder']} · `make eval` took {report['run_time_seconds']:.0f} s "
            f"(load + embed {data['turns']:,} turns: {report['load_and_embed_seconds']:.0f} s).",
            "",
            f"{data['conversations']} conversations, {data['turns']:,} turns stored as `message` memories "
            f"(one user per conversation), {data['questions']:,} questions (all 5 categories). "
            f"Evidence recall@k = share of a question's evidence turns among the top k "
            f"(threshold 0, so exactly k; no valid evidence = 1, {data['questions_without_evidence']} "
            f"questions). Hybrid = engine defaults (vector {weights['vector']}, "
            f"keyword {weights['keyword']}, "
            f"recency {weights['recency']}, half-life {weights['recency_half_life_days']:g} d, "
            f"BM25 saturation {setup['bm25_saturation']:g}, conversation context: session "
            f"{weights['session']}, neighbour {weights['neighbour']}) with `now` = the conversation's "
            "last turn; each LoCoMo session is one chat session. Baselines use one signal each "
            "(recency and context off); `hybrid-no-context` shows what the conversation context adds.",
            "",
            _markdown_table(_run_headers(report), _run_rows(report)),
            "",
            "| context tokens (cl100k_base) | Engram hybrid top-10 | anchor |",
            "|---|---|---|",
            f"| per question, mean | {report['tokens_per_question_mean']:,.0f} | Mem0: {mem0:,} |",
            f"| per question, p50 / p95 | {report['tokens_per_question_p50']:,.0f} / "
            f"{report['tokens_per_question_p95']:,.0f} | |",
            f"| per question, mean for top-5 / top-25 | {by_k['5']:,.0f} / {by_k['25']:,.0f} | |",
            f"| full history per conversation, mean | {report['full_history_tokens_mean']:,.0f} | "
            f"README: ~{full_anchor:,} |",
            f"| saving vs full history | {report['token_saving_percent']:.1f} % | |",
            f"| at the chat's threshold {at_threshold['threshold']:g}: mean tokens / memories kept | "
            f"{at_threshold['tokens_per_question_mean']:,.0f} / "
            f"{at_threshold['memories_per_question_mean']:.1f} | |",
            "",
            "Latency is wall time around `search_memories` (question embedding, both queries, scoring); "
            "'excl. embedding' passes the precomputed question vector. DRAGON is the LoCoMo paper's "
            "Table 3 retriever over dialog turns; Mem0's figure is its reported memory context per question.",
            "",
        ]
    )


def render_summary(report: Mapping[str, Any]) -> str:
    """A plain-text table for the terminal."""
    headers = ["run", "R@5", "R@10", "R@25", *[name for name in CATEGORIES.values()], "p50/p95 ms"]
    rows = [[*row[: 4 + len(CATEGORIES)], row[4 + len(CATEGORIES)]] for row in _run_rows(report)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    counts = report["data"]["questions_by_category"]
    lines.append("questions: " + ", ".join(f"{name} {counts[name]}" for name in CATEGORIES.values()))
    lines.append(
        f"context tokens per question (hybrid top-{CONTEXT_K}): "
        f"mean {report['tokens_per_question_mean']:,.0f}, "
        f"p50 {report['tokens_per_question_p50']:,.0f}, p95 {report['tokens_per_question_p95']:,.0f}; "
        f"full history {report['full_history_tokens_mean']:,.0f} per conversation "
        f"(saving {report['token_saving_percent']:.1f} %)"
    )
    lines.append(f"run time {report['run_time_seconds']:.0f} s")
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "locomo.json", out_dir / "locomo.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path
