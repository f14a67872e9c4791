"""ADD / UPDATE / DELETE / NOOP for each candidate, against what is already stored in its scope.

Cheap checks first (exact duplicate, near duplicate, nothing related, single-valued slots); only
candidates with related memories go to the LLM, which sees those memories under short local ids
(m1, m2, …) so it can never name a memory that was not shown to it.
"""

from __future__ import annotations

import re

from django.conf import settings

from core.llm import LLM
from memory.extraction import prompts
from memory.extraction.llm_extractor import ExtractionError, call_json
from memory.extraction.types import ACTIONS, Candidate, CandidateKind, Op
from memory.policy import Change, may_change
from memory.query import MemoryFilter
from memory.records import content_hash
from memory.selectors import find_exact_duplicates, find_similar, list_memories
from memory.topics import SLOT_TOPIC_PREFIX
from memory.types import Actor, ActorKind, Memory, MemoryType, Scope

FACT_TYPES = [t for t in MemoryType if t != MemoryType.MESSAGE]
# How close a memory must be to what the user asked to forget.
FORGET_DISTANCE = 0.6
# How close an earlier preference must be for "I now prefer X" to replace it.
PREFERENCE_DISTANCE = 0.6


# The plan is made before it is applied; the policy only looks at the actor's kind, and applying
# asks it again with the worker's own actor (a lock set in between still wins).
_PLANNER = Actor(ActorKind.EXTRACTOR, "planner")


def _protected(memory: Memory, *, deleting: bool) -> str:
    """Why the extractor may not make this change ("" when it may)."""
    change = Change.DELETE if deleting else Change.UPDATE
    return may_change(actor=_PLANNER, memory=memory, change=change).reason


def _refused(candidate: Candidate, target: Memory, *, reason: str, action: str, text: str = "") -> Op:
    return Op("noop", candidate, target_id=target.id, text=text, reason=reason, refused=action)


def _forget(candidate: Candidate, filter_: MemoryFilter) -> Op:
    similar = find_similar(filter=filter_, text=candidate.text, max_distance=FORGET_DISTANCE, limit=3)
    if not similar:
        return Op("noop", candidate, reason="nothing similar to forget")
    target = similar[0][0]
    blocked = _protected(target, deleting=True)
    if blocked:
        return _refused(candidate, target, reason=blocked, action="delete")
    return Op(
        "delete",
        candidate,
        target_id=target.id,
        reason=f"user asked to forget: {candidate.text}",
        with_source=True,
    )


def _names(text: str, thing: str) -> bool:
    return re.search(rf"(?<![\w']){re.escape(thing.lower())}(?![\w'])", text.lower()) is not None


def _supersede(candidate: Candidate, filter_: MemoryFilter, *, batch: list[Candidate]) -> Op:
    """ "I quit F45": the newest fact about the user themselves ("User does F45…", not "User's
    sister…") that names F45 no longer holds. A memory said in this same batch, like "User quit
    F45" itself, is not a candidate for it."""
    thing = candidate.text
    said_now = {c.text for c in batch if c is not candidate}
    for memory in list_memories(filter=filter_, limit=200).memories:
        own = memory.text.startswith("User ") and not memory.text.startswith(("User quit", "User gave up"))
        if own and _names(memory.text, thing) and memory.text not in said_now:
            blocked = _protected(memory, deleting=True)
            if blocked:
                return _refused(candidate, memory, reason=blocked, action="delete")
            return Op("delete", candidate, target_id=memory.id, reason=f"no longer true: {thing}")
    return Op("noop", candidate, reason=f"nothing stored names {thing!r}")


def _slot(candidate: Candidate, filter_: MemoryFilter) -> Op | None:
    """A single-valued attribute (home town, job, name): a new value replaces the old one."""
    slot_filter = MemoryFilter.build(
        user_id=filter_.user_id,
        agent_id=filter_.agent_id,
        namespace=filter_.namespace,
        types=FACT_TYPES,
        topics=[SLOT_TOPIC_PREFIX + candidate.slot],
    )
    current = list_memories(filter=slot_filter, limit=1).memories
    if not current and candidate.slot.startswith("preference"):
        current = _replaced_preference(candidate, filter_)
    if not current:
        return None
    target = current[0]
    if target.content_hash == content_hash(candidate.text):
        return Op("noop", candidate, target_id=target.id, reason="already known")
    blocked = _protected(target, deleting=False)
    if blocked:
        return _refused(candidate, target, reason=blocked, action="update", text=candidate.text)
    return Op("update", candidate, target_id=target.id, text=candidate.text, reason=f"new {candidate.slot}")


def _replaced_preference(candidate: Candidate, filter_: MemoryFilter) -> list[Memory]:
    """ "I switched from vim to Emacs" (slot preference:vim) replaces the preference that names vim;
    a bare "I now prefer tea" replaces the most similar preference, if one is close enough."""
    prefs = MemoryFilter.build(
        user_id=filter_.user_id,
        agent_id=filter_.agent_id,
        namespace=filter_.namespace,
        topics=["preferences"],
    )
    _, _, named = candidate.slot.partition(":")
    if named:
        mentioning = [m for m in list_memories(filter=prefs, limit=100).memories if named in m.text.lower()]
        if mentioning:
            return mentioning[:1]
    near = find_similar(filter=prefs, text=candidate.text, max_distance=PREFERENCE_DISTANCE, limit=1)
    return [near[0][0]] if near else []


def decide(candidates: list[Candidate], *, scope: Scope, llm: LLM | None) -> list[Op]:
    # Facts are compared with facts: a raw turn is no duplicate of the fact it says (and the turn
    # being extracted is already stored as one).
    filter_ = MemoryFilter.build(
        user_id=scope.user_id, agent_id=scope.agent_id, namespace=scope.namespace, types=FACT_TYPES
    )
    ops: list[Op | None] = []
    for_llm: list[tuple[int, Candidate, list[Memory]]] = []
    seen: set[str] = set()
    # Within one batch the last value of a slot wins ("I live in Lisbon… now I live in Porto").
    last_of_slot = {
        c.slot: n for n, c in enumerate(candidates) if c.slot and c.kind == CandidateKind.REMEMBER
    }
    for n, candidate in enumerate(candidates):
        if candidate.slot and last_of_slot.get(candidate.slot, n) != n:
            ops.append(
                Op("noop", candidate, reason=f"a later {candidate.slot} in the same batch replaces it")
            )
            continue
        if candidate.kind == CandidateKind.FORGET:
            ops.append(_forget(candidate, filter_))
            continue
        if candidate.kind == CandidateKind.SUPERSEDE:
            ops.append(_supersede(candidate, filter_, batch=candidates))
            continue
        digest = content_hash(candidate.text)
        if digest in seen:
            ops.append(Op("noop", candidate, reason="repeated in this batch"))
            continue
        seen.add(digest)
        exact = find_exact_duplicates(filter=filter_, text=candidate.text)
        if exact:
            ops.append(Op("noop", candidate, target_id=exact[0].id, reason="exact duplicate"))
            continue
        if candidate.slot:
            ops.append(_slot(candidate, filter_) or Op("add", candidate, reason=f"first {candidate.slot}"))
            continue
        related = find_similar(
            filter=filter_, text=candidate.text, max_distance=settings.EXTRACTION_RELATED_DISTANCE, limit=5
        )
        # Without a model, a near-identical memory means "already known". With one, the model judges:
        # "has 2 cats" and "has 3 cats" are near-identical vectors but an update.
        if llm is None and related and related[0][1] <= settings.SEMANTIC_DEDUP_DISTANCE:
            ops.append(Op("noop", candidate, target_id=related[0][0].id, reason="near duplicate"))
        elif not related or llm is None:
            ops.append(Op("add", candidate, reason="new information"))
        else:
            for_llm.append((len(ops), candidate, [memory for memory, _ in related]))
            ops.append(None)
    if for_llm:
        assert llm is not None
        for index, op in _decide_with_llm(llm, for_llm):
            ops[index] = op
    return [op for op in ops if op is not None]


def _decide_with_llm(llm: LLM, items: list[tuple[int, Candidate, list[Memory]]]) -> list[tuple[int, Op]]:
    shown: dict[str, Memory] = {}
    for _, _, related in items:
        for memory in related:
            if memory.id not in {m.id for m in shown.values()}:
                shown[f"m{len(shown) + 1}"] = memory
    existing = "\n".join(f"{short}: {memory.text}" for short, memory in shown.items())
    facts = "\n".join(f"{n}: {candidate.text}" for n, (_, candidate, _) in enumerate(items))
    data = call_json(
        llm,
        [
            {"role": "system", "content": prompts.DECISION_PROMPT},
            {"role": "user", "content": f"Existing memories:\n{existing}\n\nNew facts:\n{facts}"},
        ],
    )
    decisions = data.get("decisions")
    if not isinstance(decisions, list):
        raise ExtractionError("'decisions' must be a list")
    chosen: dict[int, Op] = {}
    for decision in decisions:
        if not isinstance(decision, dict):
            raise ExtractionError("each decision must be an object")
        fact = decision.get("fact")
        action = str(decision.get("action", "")).lower()
        if not isinstance(fact, int) or not 0 <= fact < len(items):
            raise ExtractionError(f"decision names an unknown fact {fact!r}")
        if action not in ACTIONS:
            raise ExtractionError(f"unknown action {decision.get('action')!r}")
        candidate = items[fact][1]
        reason = str(decision.get("reason") or "")[:300]
        if action in {"update", "delete"}:
            short = decision.get("id")
            if short not in shown:
                raise ExtractionError(f"decision names a memory id that was not shown: {short!r}")
            target = shown[short]
            text = decision.get("text") if action == "update" else ""
            if action == "update" and (not isinstance(text, str) or not text.strip()):
                raise ExtractionError("an UPDATE needs the new text")
            blocked = _protected(target, deleting=action == "delete")
            if blocked:
                chosen[fact] = _refused(
                    candidate, target, reason=blocked, action=action, text=(text or "").strip()
                )
            else:
                chosen[fact] = Op(
                    action, candidate, target_id=target.id, text=(text or "").strip(), reason=reason
                )
        elif action == "noop":
            chosen[fact] = Op("noop", candidate, reason=reason or "already known")
        else:
            chosen[fact] = Op("add", candidate, reason=reason or "new information")
    # A fact the model skipped is new information rather than silently dropped.
    return [
        (index, chosen.get(n) or Op("add", items[n][1], reason="new information"))
        for n, (index, _, _) in enumerate(items)
    ]
