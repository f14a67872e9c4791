"""LoCoMo through the pipeline the chat ships: what users get, not raw-turn retrieval.

Ingestion is the chat's: each LoCoMo turn pair becomes a chat turn (speaker A's turn as the user
message, speaker B's reply as the assistant's), appended to working memory and queued on the turn
stream; the worker's own job function extracts each session (the offline rules, or a model through
the scripted OpenAI-compatible server), stores every turn as a `message` memory (both speakers:
MESSAGE_MEMORY_ROLES=user,assistant) and applies its decisions. Each session happens at its own
time (time-machine moves the clock), so "yesterday" resolves as it did when it was said.

Questions go through `build_prompt`, exactly as a chat turn asks: the product's cut, the merge of a
fact with its source turn, the token budget. An evidence turn counts as found when a memory in the
prompt is that turn or was extracted from it (the memory's `source`).

The scripted model answers extraction with the data set's own `observation` annotations (facts about
each speaker, each with the turn that says it): a model that extracts like LoCoMo's annotators.
It measures the model path end to end, not a model's quality.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import time_machine
from django.test import override_settings

from bench import locomo
from bench.locomo import CATEGORIES, K_VALUES, Conversation, Progress, Session, evidence_recall
from memory import tokens

QUESTION_TOP_K = max(K_VALUES)
# The chat's default: recall@10 and the context tokens are read off the first ten memories.
CONTEXT_K = 10
FAR_FUTURE = 10**10


def turn_id(conversation: Conversation, dia_id: str) -> str:
    return f"{conversation.sample_id}-{dia_id}"


@dataclass(frozen=True)
class ChatTurn:
    """One queued chat turn: a user message (speaker A) and the replies until A speaks again."""

    user: locomo.Turn | None
    replies: tuple[locomo.Turn, ...]


def chat_turns(session: Session, speaker_a: str) -> list[ChatTurn]:
    turns: list[ChatTurn] = []
    user: locomo.Turn | None = None
    replies: list[locomo.Turn] = []
    for turn in session.turns:
        if turn.speaker == speaker_a:
            if user is not None or replies:
                turns.append(ChatTurn(user, tuple(replies)))
            user, replies = turn, []
        else:
            replies.append(turn)
    if user is not None or replies:
        turns.append(ChatTurn(user, tuple(replies)))
    return turns


def _queue_session(conversation: Conversation, session: Session, speaker_a: str) -> None:
    from memory import working
    from memory.extraction.queue import enqueue_turn
    from memory.extraction.types import TurnMessage

    session_id = locomo.session_id(conversation, session)
    user_id = conversation.sample_id
    working.ensure_session(session_id=session_id, user_id=user_id, title=f"LoCoMo {session_id}")
    for chat_turn in chat_turns(session, speaker_a):
        messages = []
        if chat_turn.user is not None:
            messages.append(("user", chat_turn.user))
        messages += [("assistant", reply) for reply in chat_turn.replies]
        queued = [
            TurnMessage(role, t.text, t.timestamp, turn_id(conversation, t.dia_id)) for role, t in messages
        ]
        for role, t in messages:
            working.append_message(
                session_id=session_id,
                role=role,
                content=t.text,
                at=t.timestamp,
                meta={"turn_id": turn_id(conversation, t.dia_id)},
            )
        enqueue_turn(user_id=user_id, session_id=session_id, turn_id=queued[0].turn_id, messages=queued)


def _extract_all() -> dict[str, int]:
    from memory.extraction import queue
    from memory.extraction.pipeline import process_entries

    queue.ensure_group()
    outcomes: dict[str, int] = {}
    while True:
        entries = queue.read_entries(consumer="locomo-e2e", block_ms=1, count=500)
        if not entries:
            return outcomes
        for key, value in process_entries(entries, worker_id="locomo-e2e", now=FAR_FUTURE).items():
            outcomes[key] = outcomes.get(key, 0) + value


def speaker_a(raw: Mapping[str, Any]) -> str:
    return str(raw["conversation"]["speaker_a"])


def ingest(
    conversations: Sequence[Conversation], raws: Sequence[Mapping[str, Any]], *, progress: Progress | None
) -> dict[str, int]:
    """Every session through the chat's queue and the worker's job, at the session's own time."""
    outcomes: dict[str, int] = {}
    # Raw turns are kept for the whole run (the default 90-day TTL is emulated afterwards, see
    # `expire_old_turns`): LoCoMo's sessions span 5 to 10 months.
    with override_settings(
        MESSAGE_MEMORY_ROLES=("user", "assistant"), EXTRACTION_DEBOUNCE_SECONDS=0, MESSAGE_TTL_SECONDS=None
    ):
        for conversation, raw in zip(conversations, raws, strict=True):
            for session in conversation.sessions:
                with time_machine.travel(session.timestamp, tick=True):
                    _queue_session(conversation, session, speaker_a(raw))
                with time_machine.travel(session.turns[-1].timestamp + 60, tick=True):
                    for key, value in _extract_all().items():
                        outcomes[key] = outcomes.get(key, 0) + value
                if progress:
                    progress.advance(len(session.turns))
    return outcomes


# --- The scripted model: LoCoMo's own observations as the extraction ------------------------------

_LINE = re.compile(r"^#(\d+) \[[^\]]*\] (?:user|assistant): (.*)$", re.MULTILINE)


def observation_model(raws: Sequence[Mapping[str, Any]]) -> Callable[[dict[str, Any]], Any]:
    """A responder for the scripted server: extraction calls get the observations of the turns in the
    transcript (with their line numbers as the source); decision calls add every fact."""
    from devtools.llm_server import Reply

    by_text: dict[str, list[str]] = {}  # turn text -> observation facts said in it
    for raw in raws:
        conversation = locomo.parse_conversation(raw)
        turn_texts = {t.dia_id: t.text for t in conversation.turns}
        for facts_by_speaker in raw.get("observation", {}).values():
            for facts in facts_by_speaker.values():
                for fact_text, dia in facts:
                    for piece in locomo.split_evidence([str(dia)]):
                        dia_id = locomo.normalise_dia_id(piece)
                        if dia_id in turn_texts:
                            by_text.setdefault(turn_texts[dia_id], []).append(str(fact_text))

    def respond(request: dict[str, Any]) -> Any:
        system = request["messages"][0]["content"]
        prompt = request["messages"][-1]["content"]
        if system.startswith("You maintain"):
            facts = re.findall(r"^(\d+): ", prompt.split("New facts:")[1], re.MULTILINE)
            decisions = [
                {"fact": int(n), "action": "ADD", "id": None, "text": None, "reason": "new"} for n in facts
            ]
            return Reply(json.dumps({"decisions": decisions}))
        if "summary" in system.lower():
            return Reply(json.dumps({"summary": "LoCoMo conversation."}))
        memories = [
            {
                "text": fact,
                "type": "semantic",
                "topics": [],
                "entities": [],
                "event_date": None,
                "source": [int(n)],
            }
            for n, text in _LINE.findall(prompt)
            for fact in by_text.get(text, [])
        ]
        return Reply(json.dumps({"memories": memories, "forget": []}))

    return respond


@contextmanager
def scripted_model(raws: Sequence[Mapping[str, Any]]) -> Iterator[None]:
    from core import llm as core_llm
    from devtools.llm_server import LLMServer

    with (
        LLMServer(default_reply=observation_model(raws)) as server,
        override_settings(
            OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY="eval-key",
            LLM_MAX_RETRIES=0,
            EXTRACTION_MODEL="observations",
        ),
    ):
        core_llm._llms.clear()
        try:
            yield
        finally:
            core_llm._llms.clear()


# --- Questions through build_prompt ---------------------------------------------------------------


@dataclass
class E2EQuestion:
    sample_id: str
    category: int
    retrieved: list[str]  # dia_ids found, in the prompt's order (a memory may stand for several)
    recall: dict[int, float]
    memories: int  # memories in the top-CONTEXT_K prompt block
    facts: int  # of which extracted facts (the rest are raw turns)
    tokens: int  # tokens of that block, as the chat injects it
    took_ms: float


def _dia_ids(memory: Any, sample_id: str) -> list[str]:
    prefix = f"{sample_id}-"
    return [s.removeprefix(prefix) for s in memory.source if s.startswith(prefix)]


def ask(
    conversations: Sequence[Conversation], *, progress: Progress | None, params: Any = None
) -> list[E2EQuestion]:
    """Every question through `build_prompt`, with `params` (a SearchParams; None: the shipped ones)."""
    from memory.prompt import build_prompt

    results: list[E2EQuestion] = []
    for conversation in conversations:
        with time_machine.travel(conversation.end_time + 3600, tick=True):
            for n, question in enumerate(conversation.questions):
                started = time.perf_counter()
                built = build_prompt(
                    user_id=conversation.sample_id,
                    session_id=f"{conversation.sample_id}-questions",
                    message=question.question,
                    top_k=QUESTION_TOP_K,
                    turn_id=f"q{n}",
                    save_trace=False,
                    params=params,
                )
                took = (time.perf_counter() - started) * 1000
                ranked: list[list[str]] = [_dia_ids(h.memory, conversation.sample_id) for h in built.memories]
                recall = {k: _recall(ranked[:k], question.evidence.ids) for k in K_VALUES}
                top = [h.memory for h in built.memories[:CONTEXT_K]]
                results.append(
                    E2EQuestion(
                        sample_id=conversation.sample_id,
                        category=question.category,
                        retrieved=[d for ids in ranked for d in ids],
                        recall=recall,
                        memories=len(top),
                        facts=sum(1 for m in top if m.type != "message"),
                        tokens=tokens.count(locomo.memory_context(top)) if top else 0,
                        took_ms=took,
                    )
                )
                if progress:
                    progress.advance()
    return results


def _recall(ranked: Sequence[Sequence[str]], evidence: Sequence[str]) -> float:
    """Evidence recall when each retrieved memory may cover several turns (a fact can come from two)."""
    return evidence_recall([d for ids in ranked for d in ids], evidence, k=10**6)


def summarise(questions: Sequence[E2EQuestion]) -> dict[str, Any]:
    def mean(values: Any) -> float:
        values = list(values)
        return round(100 * sum(values) / len(values), 1) if values else 0.0

    by_category = {
        name: {
            f"recall_at_{k}": mean(q.recall[k] for q in questions if q.category == number) for k in K_VALUES
        }
        for number, name in CATEGORIES.items()
    }
    return {
        **{f"recall_at_{k}": mean(q.recall[k] for q in questions) for k in K_VALUES},
        "by_category": by_category,
        "questions": len(questions),
        "context_memories": CONTEXT_K,
        "tokens_per_question_mean": round(sum(q.tokens for q in questions) / max(1, len(questions)), 1),
        "tokens_per_question_p95": round(locomo.percentile([q.tokens for q in questions], 95), 1),
        "memories_per_question_mean": round(sum(q.memories for q in questions) / max(1, len(questions)), 2),
        "facts_share_of_memories_percent": round(
            100 * sum(q.facts for q in questions) / max(1, sum(q.memories for q in questions)), 1
        ),
        "build_prompt_p50_ms": round(locomo.percentile([q.took_ms for q in questions], 50), 2),
        "build_prompt_p95_ms": round(locomo.percentile([q.took_ms for q in questions], 95), 2),
    }


def halves(questions: Sequence[E2EQuestion], conversations: Sequence[Conversation]) -> dict[str, float]:
    """Recall@10 on conversations 1-5 and 6-10: a change should hold on both."""
    first = {c.sample_id for c in conversations[: len(conversations) // 2]}
    return {
        "first_half": summarise([q for q in questions if q.sample_id in first])["recall_at_10"],
        "second_half": summarise([q for q in questions if q.sample_id not in first])["recall_at_10"],
    }


def expire_old_turns(conversations: Sequence[Conversation], *, ttl_seconds: int) -> int:
    """Delete the raw turns that the default TTL would have expired by each conversation's end, as
    Redis expiry would (the keys go; facts stay). Returns how many went."""
    from core.redis_client import get_redis
    from memory import keys
    from memory.query import MemoryFilter
    from memory.selectors import list_memories

    removed = 0
    for conversation in conversations:
        old = MemoryFilter.build(
            user_id=conversation.sample_id,
            types=["message"],
            created_before=conversation.end_time - ttl_seconds,
        )
        while True:
            page = list_memories(filter=old, limit=500)
            if not page.memories:
                break
            get_redis().delete(*[keys.memory(m.id) for m in page.memories])
            removed += len(page.memories)
    return removed


def _memory_counts() -> dict[str, int]:
    from memory.selectors import counts_by_type

    return counts_by_type(user_id=None)


def run(
    data_path: Path,
    *,
    extractor: str,
    progress_factory: Callable[[str, int], Progress] | None,
    sweep_knobs: Sequence[str] = (),
) -> dict[str, Any]:
    """One end-to-end run in the Redis the product points at (the caller gives it a fresh one)."""
    started = time.perf_counter()
    raws = json.loads(data_path.read_text())
    conversations = [locomo.parse_conversation(raw) for raw in raws]
    turns = sum(len(c.turns) for c in conversations)
    model = scripted_model(raws) if extractor == "model" else _offline()
    with model:
        progress = progress_factory(f"e2e {extractor}: ingest", turns) if progress_factory else None
        outcomes = ingest(conversations, raws, progress=progress)
        if progress:
            progress.close()
    ingest_seconds = time.perf_counter() - started
    questions = sum(len(c.questions) for c in conversations)
    progress = progress_factory(f"e2e {extractor}: ask", questions) if progress_factory else None
    asked = ask(conversations, progress=progress)
    if progress:
        progress.close()
    counts = _memory_counts()
    from django.conf import settings

    from bench.tuning import locomo_sweeps

    split_half = locomo_sweeps(conversations, sweep_knobs) if sweep_knobs else {}
    ttl = settings.MESSAGE_TTL_SECONDS
    with_ttl: dict[str, Any] = {}
    if ttl:
        expired = expire_old_turns(conversations, ttl_seconds=ttl)
        progress = (
            progress_factory(f"e2e {extractor}: ask, {ttl // 86400}-day TTL", questions)
            if progress_factory
            else None
        )
        asked_with_ttl = ask(conversations, progress=progress)
        if progress:
            progress.close()
        with_ttl = {"ttl_days": ttl // 86400, "raw_turns_expired": expired, **summarise(asked_with_ttl)}
    return {
        "extractor": "offline rules"
        if extractor == "rules"
        else "scripted model answering with LoCoMo observations",
        **summarise(asked),
        "split_halves_recall_at_10": halves(asked, conversations),
        "extraction_outcomes": outcomes,
        "memories_by_type": counts,
        "with_default_message_ttl": with_ttl,
        "split_half": split_half,
        "ingest_seconds": round(ingest_seconds, 1),
        "run_seconds": round(time.perf_counter() - started, 1),
    }


@contextmanager
def _offline() -> Iterator[None]:
    from core import llm as core_llm

    with override_settings(OPENAI_BASE_URL="", OPENAI_API_KEY=""):
        core_llm._llms.clear()
        yield
