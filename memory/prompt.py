"""Code-driven retrieval for every turn: summary + recent messages within a token budget + the
most relevant long-term memories, assembled into the LLM's messages, with a saved trace that
explains what was used and why."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from ulid import ULID

from memory import tokens, working
from memory.extraction.dates import spoken_epoch
from memory.hits import ranking
from memory.query import MemoryFilter
from memory.recall import Arranged, arrange, is_profile_question, profile_hits
from memory.scoring import scoring_weights
from memory.search import search_memories
from memory.search_params import SearchParams
from memory.selectors import list_memories
from memory.services import record_access
from memory.traces import RetrievalTrace, TraceHit, TraceTokens, store_trace
from memory.types import (
    Memory,
    MemoryNotFound,
    MemoryType,
    ScoreBreakdown,
    SearchHit,
    SearchResult,
    score_text,
)

SYSTEM_INSTRUCTIONS = (
    "You are Engram, a helpful assistant with long-term memory. Use what you remember about the user "
    "when it helps, never invent memories, and say so when you do not know. You may call tools to "
    "search, add or forget memories when the user asks."
)
MEMORY_HEADER = "What you remember about the user (most relevant first):"
SUMMARY_HEADER = "Summary of the earlier conversation:"
# Memories may use at most this share of the budget, so recent messages always have room.
MEMORY_BUDGET_SHARE = 0.4
MAX_PINNED = 5
# Extra hits asked of the search, so dropping raw turns the conversation already holds still
# leaves top_k to show.
ARRANGE_SLACK = 10


@dataclass
class BuiltPrompt:
    turn_id: str
    messages: list[dict[str, str]]
    memories: list[SearchHit]
    near_misses: list[SearchHit]
    profile: bool
    token_breakdown: dict[str, int]
    budget: int
    exact_tokens: bool
    trace: RetrievalTrace


def _memory_line(memory: Memory) -> str:
    if memory.type == MemoryType.MESSAGE:
        who = {"user": "the user said", "assistant": "the assistant said"}.get(memory.said_by, "said")
        return f"- [{who} on {spoken_epoch(memory.created_at)}] {memory.text}"
    when = ""
    if memory.event_date:
        # Only when the text does not say it already (rules write the date into the text).
        date_text = spoken_epoch(memory.event_date)
        iso = f"{datetime.fromtimestamp(memory.event_date, tz=UTC):%Y-%m-%d}"
        if date_text not in memory.text and iso not in memory.text:
            when = f" (on {date_text})"
    return f"- [{memory.type}] {memory.text}{when}"


def admission_rule(hit: SearchHit, result: SearchResult) -> str:
    """Which rule put a memory into the prompt, in words (shown per memory in the trace)."""
    ranked = ranking(hit)
    if ranked["ranked_by"] != "score":
        return str(ranked["why"])
    return (
        f"{ranked['why']} >= cut {score_text(result.cut)} = max(floor {result.threshold:g}, "
        f"{result.relative_threshold:g} x best)"
    )


def _pinned_hits(filter_: MemoryFilter, exclude: set[str]) -> list[SearchHit]:
    pinned = MemoryFilter.build(
        user_id=filter_.user_id,
        agent_id=filter_.agent_id,
        namespace=filter_.namespace,
        namespaces=filter_.namespaces or None,
        pinned_only=True,
    )
    page = list_memories(filter=pinned, limit=MAX_PINNED)
    none = ScoreBreakdown(vector=0.0, keyword=0.0, recency=0.0, final=0.0)
    return [SearchHit(m, none, reason="pinned") for m in page.memories if m.id not in exclude]


def build_prompt(
    *,
    user_id: str,
    session_id: str,
    message: str,
    agent_id: str = "engram",
    namespace: str = "default",
    namespaces: Sequence[str] = (),
    budget: int | None = None,
    top_k: int | None = None,
    turn_id: str | None = None,
    save_trace: bool = True,
    system_instructions: str = SYSTEM_INSTRUCTIONS,
    params: SearchParams | None = None,
) -> BuiltPrompt:
    """Assemble the messages for one turn. With save_trace=False (the inspector's sandbox) nothing
    is written: no trace, no access stats. `params`: the search's knobs (default: settings).
    `namespaces`: any of these (an API app key's reach); an empty `agent_id` or `namespace` is any.
    `session_id` "" builds a prompt outside any conversation."""
    started = time.perf_counter()
    now = time.time()
    budget = budget or settings.PROMPT_TOKEN_BUDGET
    params = SearchParams.from_settings() if params is None else params
    top_k = params.top_k if top_k is None else top_k
    turn_id = turn_id or str(ULID())
    filter_ = MemoryFilter.build(
        user_id=user_id, agent_id=agent_id, namespace=namespace, namespaces=list(namespaces) or None
    )
    # No session: a prompt for a question outside any conversation (memories only).
    session, session_messages = (
        working.get_session_with_messages(session_id=session_id) if session_id else (None, [])
    )
    profile = is_profile_question(message)
    if profile:
        result = SearchResult(hits=[], near_misses=[], threshold=0.0, mode="profile", took_ms=0.0)
        arranged = Arranged(hits=[], left_out=[])
        chosen = profile_hits(filter_=filter_, now=now)
    else:
        # This session's own turns are in the recent messages already: leave their raw copies out
        # of the search (they would also set the relative cut for memories that are shown).
        searched = MemoryFilter.build(
            user_id=user_id,
            agent_id=agent_id,
            namespace=namespace,
            namespaces=list(namespaces) or None,
            without_messages_of_session=session_id,
        )
        result = search_memories(
            filter=searched, text=message, top_k=min(100, top_k + ARRANGE_SLACK), now=now, params=params
        )
        arranged = arrange(result.hits)
        chosen = arranged.hits[:top_k]
    pinned = _pinned_hits(filter_, {h.memory.id for h in chosen})

    message_tokens = tokens.count_message(message)
    instruction_tokens = tokens.count_message(system_instructions)

    memory_lines: list[str] = []
    used: list[SearchHit] = []
    memory_budget = int(budget * MEMORY_BUDGET_SHARE)
    memory_tokens = tokens.count(MEMORY_HEADER) + 1
    for hit in [*pinned, *chosen]:
        line = _memory_line(hit.memory)
        cost = tokens.count(line) + 1
        if memory_tokens + cost > memory_budget:
            break
        memory_lines.append(line)
        used.append(hit)
        memory_tokens += cost
    if not used:
        memory_tokens = 0

    summary = session.summary if session else ""
    summary_tokens = tokens.count(SUMMARY_HEADER) + tokens.count(summary) + 2 if summary else 0

    remaining = budget - instruction_tokens - memory_tokens - summary_tokens - message_tokens
    recent: list[working.WorkingMessage] = []
    recent_tokens = 0
    if session:
        for past in reversed(session_messages):
            if past.role not in {"user", "assistant"}:
                continue
            # The chat saves this turn's message before building its prompt; it goes last, once.
            if past.role == "user" and past.meta.get("turn_id") == turn_id:
                continue
            if recent_tokens + past.tokens > remaining:
                break
            recent.insert(0, past)
            recent_tokens += past.tokens

    system_parts = [system_instructions]
    if memory_lines:
        system_parts.append(MEMORY_HEADER + "\n" + "\n".join(memory_lines))
    if summary:
        system_parts.append(f"{SUMMARY_HEADER}\n{summary}")
    messages = [{"role": "system", "content": "\n\n".join(system_parts)}]
    messages += [{"role": m.role, "content": m.content} for m in recent]
    messages.append({"role": "user", "content": message})

    # A pinned memory is injected whatever its score; it is no "miss" even when it scored low.
    used_ids = {h.memory.id for h in used}
    near_misses = [h for h in result.near_misses if h.memory.id not in used_ids]
    breakdown = {
        "system_instructions": instruction_tokens,
        "memories": memory_tokens,
        "summary": summary_tokens,
        "recent_messages": recent_tokens,
        "user_message": message_tokens,
    }
    breakdown["total"] = sum(breakdown.values())
    exact = tokens.exact_counts_available()
    trace = RetrievalTrace(
        turn_id=turn_id,
        session_id=session_id,
        user_id=user_id,
        at=now,
        query=message,
        mode="profile" if profile else result.mode,
        threshold=result.threshold,
        relative_threshold=result.relative_threshold,
        cut=result.cut,
        weights=scoring_weights(params=params),
        memories=[TraceHit.from_hit(h, admitted_by=admission_rule(h, result)) for h in used],
        dropped_for_budget=[TraceHit.from_hit(h) for h in [*pinned, *chosen][len(used) :]],
        near_misses=[TraceHit.from_hit(h) for h in near_misses],
        left_out=[TraceHit.from_hit(h, why=why) for h, why in arranged.left_out],
        tokens=TraceTokens(**breakdown, budget=budget, exact=exact, recent_message_count=len(recent)),
        search_ms=round(result.took_ms, 2),
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    if save_trace:
        if session:
            store_trace(trace)
        record_access(memory_ids=[h.memory.id for h in used], now=now)
    return BuiltPrompt(
        turn_id=turn_id,
        messages=messages,
        memories=used,
        near_misses=near_misses,
        profile=profile,
        token_breakdown=breakdown,
        budget=budget,
        exact_tokens=exact,
        trace=trace,
    )


NO_SUCH_SESSION = "no such session (it may have expired)"


def session_in_reach(*, session_id: str, reach: MemoryFilter) -> working.Session | None:
    """The session when it is a conversation of reach's user (and of its agent, when reach names
    one); None when it does not exist. Another user's or agent's session is MemoryNotFound: to the
    caller it is not there, whatever it holds."""
    session = working.get_session(session_id=session_id)
    if session is None:
        return None
    if session.user_id != reach.user_id or (reach.agent_id and session.agent_id != reach.agent_id):
        raise MemoryNotFound(NO_SUCH_SESSION)
    return session


def prompt_in_reach(
    *,
    reach: MemoryFilter,
    message: str,
    session_id: str = "",
    require_session: bool = False,
    budget: int | None = None,
    top_k: int | None = None,
    system_instructions: str = SYSTEM_INSTRUCTIONS,
) -> BuiltPrompt:
    """The prompt for a caller outside the chat (the REST API, the AMS-compatible API, the MCP
    tool), one rule for all: it draws on what that caller's own search finds, `reach` (its user,
    and its agent and namespaces: an app key's every namespace unless it named one, a staff key's
    any agent unless it named one; reach's other filters are not used), and on `session_id` when
    that is a conversation of the same user (and agent, when reach names one).

    `session_id` "" or a session not started yet: no conversation, memories only
    (`require_session`: MemoryNotFound instead). A session of another user or agent is "not found",
    as a missing one. Like a chat turn, it records the memories' use and, with a session, the trace."""
    session = session_in_reach(session_id=session_id, reach=reach) if session_id else None
    if session is None and session_id and require_session:
        raise MemoryNotFound(NO_SUCH_SESSION)
    return build_prompt(
        user_id=reach.user_id,
        session_id=session.id if session else "",
        message=message,
        agent_id=reach.agent_id,
        namespace=reach.namespace,
        namespaces=reach.namespaces,
        budget=budget,
        top_k=top_k,
        system_instructions=system_instructions,
    )


abuild_prompt = sync_to_async(build_prompt, thread_sensitive=False)
