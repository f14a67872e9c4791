"""LLM extraction: ask the model, validate its JSON against the schema, never trust it further."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from django.conf import settings

from core.llm import LLM, Completion, Message
from memory.extraction import prompts
from memory.extraction.queue import bump
from memory.extraction.types import Candidate, CandidateKind, TurnMessage
from memory.types import MemoryType


class ExtractionError(RuntimeError):
    """The model's answer did not match the schema (retried, then dead-lettered)."""


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def parse_json_object(text: str) -> dict[str, Any]:
    cleaned = _FENCE.sub("", text.strip())
    try:
        data = json.loads(cleaned)
    except ValueError as exc:
        raise ExtractionError(f"the model did not return JSON: {text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise ExtractionError("the model returned JSON that is not an object")
    return data


def transcript(messages: Sequence[TurnMessage]) -> str:
    """One numbered line per message ("#3 [2026-11-24 15:30 UTC] user: …"): the model names the
    lines a memory comes from, so each memory links to the turn that said it."""
    lines = []
    for number, message in enumerate(messages, start=1):
        when = datetime.fromtimestamp(message.at, tz=UTC).strftime("%Y-%m-%d %H:%M")
        lines.append(f"#{number} [{when} UTC] {message.role}: {message.content}")
    return "\n".join(lines)


def _sources(value: Any, messages: Sequence[TurnMessage], *, fallback: list[str]) -> list[str]:
    """The turn ids of the transcript lines a memory names; the whole batch when it names none."""
    if value in (None, []):
        return fallback
    numbers = value if isinstance(value, list) else [value]
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        raise ExtractionError("'source' must list transcript line numbers")
    if any(not 1 <= n <= len(messages) for n in numbers):
        raise ExtractionError(f"'source' names a line that is not in the transcript: {numbers!r}")
    turn_ids = [messages[n - 1].turn_id for n in numbers if messages[n - 1].turn_id]
    return list(dict.fromkeys(turn_ids)) or fallback


def call_json(llm: LLM, messages: list[Message]) -> dict[str, Any]:
    completion: Completion = llm.complete(messages, json_mode=True, model=settings.EXTRACTION_MODEL)
    bump("llm_calls")
    bump("llm_prompt_tokens", completion.usage.prompt_tokens)
    bump("llm_completion_tokens", completion.usage.completion_tokens)
    return parse_json_object(completion.text)


def _strings(value: Any, *, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ExtractionError(f"'{name}' must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def _event_date(value: Any) -> float | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ExtractionError("'event_date' must be YYYY-MM-DD or null")
    try:
        day = date.fromisoformat(value[:10])
    except ValueError as exc:
        raise ExtractionError(f"'event_date' {value!r} is not YYYY-MM-DD") from exc
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def validate_candidates(
    data: dict[str, Any], *, source_turn_ids: list[str], messages: Sequence[TurnMessage] = ()
) -> list[Candidate]:
    memories = data.get("memories")
    if not isinstance(memories, list):
        raise ExtractionError("'memories' must be a list")
    candidates: list[Candidate] = []
    for item in memories:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not item["text"].strip():
            raise ExtractionError("each memory needs a non-empty 'text'")
        text = item["text"].strip()
        if len(text) > settings.MEMORY_MAX_TEXT_CHARS:
            raise ExtractionError("a memory text is longer than MEMORY_MAX_TEXT_CHARS")
        try:
            memory_type = MemoryType(item.get("type") or "semantic")
        except ValueError as exc:
            raise ExtractionError(f"unknown memory type {item.get('type')!r}") from exc
        if memory_type == MemoryType.MESSAGE:
            raise ExtractionError("the extractor may not write raw message memories")
        candidates.append(
            Candidate(
                text=text,
                type=memory_type,
                topics=_strings(item.get("topics"), name="topics"),
                entities=_strings(item.get("entities"), name="entities"),
                event_date=_event_date(item.get("event_date")),
                source_turn_ids=_sources(item.get("source"), messages, fallback=source_turn_ids),
            )
        )
    for text in _strings(data.get("forget"), name="forget"):
        candidates.append(Candidate(text=text, kind=CandidateKind.FORGET, source_turn_ids=source_turn_ids))
    return candidates


def extract_with_llm(
    llm: LLM, messages: Sequence[TurnMessage], *, strategy: str, source_turn_ids: list[str]
) -> list[Candidate]:
    if strategy == "custom" and settings.EXTRACTION_CUSTOM_PROMPT:
        system = prompts.custom_prompt(settings.EXTRACTION_CUSTOM_PROMPT)
    else:
        system = prompts.STRATEGY_PROMPTS.get(strategy, prompts.STRATEGY_PROMPTS["discrete"])
    data = call_json(
        llm, [{"role": "system", "content": system}, {"role": "user", "content": transcript(messages)}]
    )
    return validate_candidates(data, source_turn_ids=source_turn_ids, messages=messages)


def summarise_with_llm(llm: LLM, *, current: str, messages: Sequence[TurnMessage], prompt: str) -> str:
    content = f"Current summary:\n{current or '(none)'}\n\nNew messages:\n{transcript(messages)}"
    data = call_json(llm, [{"role": "system", "content": prompt}, {"role": "user", "content": content}])
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise ExtractionError("'summary' must be a non-empty string")
    return summary.strip()[: settings.MEMORY_MAX_TEXT_CHARS]
