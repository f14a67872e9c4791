"""One extraction job: a session's pending turns → a stored plan → applied exactly once → committed.

The plan (the model's decisions) is saved before anything is applied, and every operation in it
carries an idempotency key. A worker killed half-way leaves the plan behind; whoever takes the job
over applies the same plan, and the operations already applied are skipped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace
from typing import Any

from django.conf import settings

from core.llm import LLM, LLMError, get_llm
from core.redis_client import REDIS_UNREACHABLE, get_redis
from memory import keys, working
from memory.access import Owner
from memory.events import publish_decisions
from memory.extraction import dead_letters, prompts, queue
from memory.extraction.compaction import compact_session, extractive_summary
from memory.extraction.decide import decide
from memory.extraction.llm_extractor import ExtractionError, extract_with_llm, summarise_with_llm
from memory.extraction.messages import forget_sources, store_messages
from memory.extraction.queue import QueuedTurn, StreamEntry
from memory.extraction.rules import RULES_VERSION, extract_candidates
from memory.extraction.types import Candidate, ExtractionPlan, Op, PlanError, PlanExtractor, TurnMessage
from memory.lease import fenced, kept_alive
from memory.services import add_memory, delete_memory, record_refused_change, update_memory
from memory.topics import SLOT_TOPIC_PREFIX
from memory.types import Actor, ActorKind, Lease, LeaseLost, MemoryLocked, MemoryNotFound, MemoryType, Scope

logger = logging.getLogger(__name__)

SUMMARY_TOPIC = "session-summary"


def extraction_llm() -> LLM | None:
    """The configured model, or None in offline mode (the rules extractor runs instead)."""
    llm = get_llm()
    return None if llm.mode == "offline" else llm


def _owner(session_id: str, *, fallback: str) -> str:
    """Whose memories a session's turns make now. After an anonymous visitor logs in, their session
    belongs to the account: follow it (read again at write time; the lease catches a later move)."""
    session = working.get_session(session_id=session_id)
    return session.user_id if session else fallback


def _scope(turns: Sequence[QueuedTurn]) -> Scope:
    latest = turns[-1]
    user_id = _owner(latest.session_id, fallback=latest.user_id)
    return Scope(user_id=user_id, agent_id=latest.agent_id, namespace=latest.namespace)


def _messages(turns: Sequence[QueuedTurn]) -> list[TurnMessage]:
    return [TurnMessage(m.role, m.content, m.at, m.turn_id or t.turn_id) for t in turns for m in t.messages]


def build_plan(turns: Sequence[QueuedTurn], *, llm: LLM | None) -> ExtractionPlan:
    strategy = turns[-1].strategy or settings.EXTRACTION_STRATEGY
    scope = _scope(turns)
    messages = _messages(turns)
    source = [t.turn_id for t in turns]
    if llm is None:
        extractor = PlanExtractor(model="rules", prompt_version=RULES_VERSION)
    else:
        extractor = PlanExtractor(model=settings.EXTRACTION_MODEL, prompt_version=prompts.PROMPT_VERSION)
    plan = ExtractionPlan(
        from_seq=turns[0].seq,
        to_seq=turns[-1].seq,
        strategy=strategy,
        scope=scope,
        extractor=extractor,
        source=source,
    )
    if strategy == "summary":
        current = working.get_session(session_id=turns[-1].session_id)
        previous = current.summary if current else ""
        if llm is None:
            older = [working.WorkingMessage("", m.role, m.content, m.at, 0) for m in messages]
            summary = extractive_summary(previous, older)
        else:
            summary = summarise_with_llm(
                llm, current=previous, messages=messages, prompt=prompts.SUMMARY_PROMPT
            )
        return replace(plan, summary=summary)
    candidates = _candidates(messages, strategy=strategy, llm=llm, source=source)
    return replace(plan, ops=decide(candidates, scope=scope, llm=llm))


def _candidates(
    messages: list[TurnMessage], *, strategy: str, llm: LLM | None, source: list[str]
) -> list[Candidate]:
    if llm is not None:
        return extract_with_llm(llm, messages, strategy=strategy, source_turn_ids=source)
    candidates = extract_candidates(messages)
    if strategy == "preferences":
        candidates = [c for c in candidates if "preferences" in c.topics]
    return candidates


def apply_plan(
    plan: ExtractionPlan, *, session_id: str, worker_id: str, lease: Lease | None = None
) -> Counter[str]:
    actor = Actor(
        ActorKind.EXTRACTOR,
        worker_id,
        model=plan.extractor.model,
        prompt_version=plan.extractor.prompt_version,
    )
    planned = plan.scope
    # The plan may have been made (and saved) before the visitor logged in: write for the owner now.
    scope = Scope(
        user_id=_owner(session_id, fallback=planned.user_id),
        agent_id=planned.agent_id,
        namespace=planned.namespace,
    )
    key_prefix = f"extract:{session_id}:{plan.from_seq}"
    outcomes: Counter[str] = Counter()
    if plan.summary is not None:
        _apply_summary(
            plan, scope=scope, actor=actor, session_id=session_id, key=f"{key_prefix}:summary", lease=lease
        )
        outcomes["summary"] += 1
        return outcomes
    unchanged: list[dict[str, Any]] = []
    for n, op in enumerate(plan.ops):
        outcome = _apply_op(
            op, scope=scope, actor=actor, key=f"{key_prefix}:{n}", source=plan.source, lease=lease
        )
        outcomes[outcome] += 1
        if outcome == "noop":
            unchanged.append(_noop_decision(op, actor=actor, user_id=scope.user_id))
    publish_decisions(session_id=session_id, decisions=unchanged)
    return outcomes


def _noop_decision(op: Op, *, actor: Actor, user_id: str) -> dict[str, Any]:
    return {
        "text": op.text or op.candidate.text,
        "memory_type": str(op.candidate.type),
        "memory_id": op.target_id,
        "reason": op.reason,
        "actor": actor.as_dict(),
        "user_id": user_id,
        "at": time.time(),
    }


def _apply_op(op: Op, *, scope: Scope, actor: Actor, key: str, source: list[str], lease: Lease | None) -> str:
    candidate = op.candidate
    # A plan changes only memories of the turns' own user; any other id is "gone" (a no-op).
    owner = Owner.user(scope.user_id)
    if op.refused:
        return _record_refusal(op, owner=owner, actor=actor, key=key, action=op.refused, reason=op.reason)
    try:
        if op.action == "add":
            topics = [*candidate.topics, *([SLOT_TOPIC_PREFIX + candidate.slot] if candidate.slot else [])]
            add_memory(
                text=candidate.text,
                scope=scope,
                actor=actor,
                type=candidate.type,
                topics=topics,
                entities=candidate.entities,
                event_date=candidate.event_date,
                # The turns that said it, not every turn of the batch.
                source=candidate.source_turn_ids or source,
                reason=op.reason,
                idempotency_key=key,
                lease=lease,
            )
        elif op.action == "update":
            update_memory(
                memory_id=op.target_id,
                owner=owner,
                text=op.text,
                # The entities are found again for the new text (memory.entities), these first.
                entity_hints=candidate.entities,
                actor=actor,
                reason=op.reason,
                idempotency_key=key,
                lease=lease,
            )
        elif op.action == "delete":
            deleted = delete_memory(
                memory_id=op.target_id,
                owner=owner,
                actor=actor,
                reason=op.reason,
                idempotency_key=key,
                lease=lease,
            )
            if op.with_source:
                forget_sources(deleted, actor=actor, reason=op.reason, key=key, lease=lease)
        return op.action
    except MemoryLocked as exc:
        # Staff locked it since the plan was made.
        return _record_refusal(op, owner=owner, actor=actor, key=key, action=op.action, reason=str(exc))
    except MemoryNotFound as exc:
        # It went away since the plan was made: the plan step becomes a no-op.
        logger.info("extraction %s on %s skipped: %s", op.action, op.target_id, exc)
        return "noop"


def _record_refusal(op: Op, *, owner: Owner, actor: Actor, key: str, action: str, reason: str) -> str:
    """The target's history says what the extractor wanted and why it may not (support sees it)."""
    try:
        record_refused_change(
            memory_id=op.target_id,
            owner=owner,
            actor=actor,
            action=action,
            proposed_text=op.text or op.candidate.text,
            reason=reason,
            # Not the op's own key: marking that applied would make a re-run skip the op as done.
            idempotency_key=f"{key}:refused",
        )
    except MemoryNotFound:
        logger.info("extraction %s on %s refused, and the memory is gone", action, op.target_id)
    return "refused"


def _apply_summary(
    plan: ExtractionPlan, *, scope: Scope, actor: Actor, session_id: str, key: str, lease: Lease | None
) -> None:
    client = get_redis()
    summary_id = client.get(keys.extraction(session_id, "summary_id"))
    text = plan.summary or ""
    if summary_id:
        try:
            update_memory(memory_id=summary_id.decode(), owner=Owner.user(scope.user_id), text=text,
                          actor=actor, reason="rolling summary", idempotency_key=key,
                          lease=lease)  # fmt: skip
            return
        # Gone, or staff pinned or locked it: their summary stays as it is, the new one is added.
        except (MemoryNotFound, MemoryLocked):
            pass
    memory = add_memory(
        text=text,
        scope=Scope(
            user_id=scope.user_id, agent_id=scope.agent_id, namespace=scope.namespace, session_id=session_id
        ),
        actor=actor,
        type=MemoryType.EPISODIC,
        topics=[SUMMARY_TOPIC],
        source=plan.source,
        reason="rolling summary",
        idempotency_key=key,
        lease=lease,
    )
    with fenced(lease) as pipe:
        pipe.set(keys.extraction(session_id, "summary_id"), memory.id, ex=queue.STATE_TTL_SECONDS)


# --- The worker's view: process what a read returned -----------------------------------------------


def process_entries(
    entries: Sequence[StreamEntry], *, worker_id: str, life: str = "", now: float | None = None
) -> Counter[str]:
    """Group entries by session and run each session that is due. Returns counters for logging."""
    by_session: dict[str, list[StreamEntry]] = {}
    for entry in entries:
        by_session.setdefault(entry.session_id, []).append(entry)
    totals: Counter[str] = Counter()
    for session_id, session_entries in by_session.items():
        totals.update(process_session(session_id, session_entries, worker_id=worker_id, life=life, now=now))
    return totals


def process_session(
    session_id: str,
    entries: Sequence[StreamEntry],
    *,
    worker_id: str,
    life: str = "",
    now: float | None = None,
) -> Counter[str]:
    now = time.time() if now is None else now
    outcomes: Counter[str] = Counter()
    applied_upto = queue.cursor(session_id)
    queue.ack([e for e in entries if e.seq <= applied_upto], session_id=session_id)
    live = [e for e in entries if e.seq > applied_upto]
    if not live:
        return outcomes
    if now < queue.retry_at(session_id):
        return outcomes
    if now - queue.last_turn_at(session_id) < settings.EXTRACTION_DEBOUNCE_SECONDS:
        return outcomes  # more turns may be coming: extract the burst once
    token = queue.acquire_lock(session_id, owner=worker_id, life=life)
    if token is None:
        return outcomes  # another worker has this session right now
    try:
        lease = queue.lease(session_id, token)
        with kept_alive(lease, seconds=settings.EXTRACTION_LOCK_SECONDS):
            _run_job(session_id, live, worker_id=worker_id, lease=lease, outcomes=outcomes)
    except LeaseLost as exc:
        # An erase or a login took the session over mid-job: whatever is left is not ours to write.
        # The entries stay pending; the next round finds the session erased or under its new owner.
        logger.info("extraction of session %s stopped: %s", session_id, exc)
        outcomes["taken_over"] += 1
    finally:
        # Redis gone: the lock expires, or this worker takes it back (same name) on its next try.
        with suppress(*REDIS_UNREACHABLE):
            queue.release_lock(session_id, token)
    return outcomes


def _run_job(
    session_id: str, entries: list[StreamEntry], *, worker_id: str, lease: Lease, outcomes: Counter[str]
) -> None:
    """The session's pending turns, extracted and applied under the session lock (`lease`)."""
    applied_upto = queue.cursor(session_id)
    turns = queue.pending_turns(session_id, after=applied_upto)
    if not turns:
        queue.ack(entries, session_id=session_id)
        return
    entry_ids = [e.id for e in entries]
    from_seq = applied_upto + 1
    if queue.failures(session_id, entry_ids) >= settings.EXTRACTION_MAX_DELIVERIES:
        dead_letters.dead_letter(
            session_id=session_id,
            user_id=turns[-1].user_id,
            turns=turns,
            error="failed too many times",
            entries=entries,
            lease=lease,
        )
        outcomes["dead_lettered"] += 1
        return
    llm = extraction_llm()
    try:
        plan = queue.load_plan(session_id, from_seq)
        if plan is None:
            # What was said is kept first, so a failing extractor cannot lose it.
            store_messages(turns, scope=_scope(turns), session_id=session_id, lease=lease)
            plan = build_plan(turns, llm=llm)
            queue.save_plan(session_id, from_seq, plan, lease=lease)
        outcomes.update(apply_plan(plan, session_id=session_id, worker_id=worker_id, lease=lease))
        queue.commit(
            session_id=session_id, to_seq=plan.to_seq, from_seq=from_seq, entries=entries, lease=lease
        )
    except LeaseLost:
        raise
    except REDIS_UNREACHABLE:
        # Not the turns' fault: the worker loop tries the job again once Redis answers, and the
        # attempt is not counted as a failure.
        raise
    except Exception as exc:  # junk from the model, an unreachable model, or a bug: retry, then park
        attempt = queue.record_failure(session_id, entry_ids, lease=lease)
        outcomes["failed"] += 1
        queue.bump("jobs_failed")
        expected = isinstance(exc, ExtractionError | LLMError | PlanError)
        logger.warning(
            "extraction of session %s failed (attempt %d): %s",
            session_id,
            attempt,
            exc,
            exc_info=not expected,
        )
        if attempt >= settings.EXTRACTION_MAX_DELIVERIES:
            dead_letters.dead_letter(
                session_id=session_id,
                user_id=turns[-1].user_id,
                turns=turns,
                error=str(exc),
                entries=entries,
                lease=lease,
            )
            outcomes["dead_lettered"] += 1
        return
    queue.bump("jobs_done")
    for action in ("add", "update", "delete", "noop", "refused", "summary"):
        queue.bump(f"outcome_{action}", outcomes[action])
    try:
        compact_session(session_id=session_id, llm=llm)
    except (ExtractionError, LLMError, MemoryNotFound) as exc:  # compaction can wait for the next turn
        logger.warning("compaction of session %s failed: %s", session_id, exc)
