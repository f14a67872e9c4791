"""Working-memory compaction: past the token limit, older messages fold into the session summary."""

from __future__ import annotations

import re

from django.conf import settings

from core.llm import LLM
from memory import working
from memory.extraction import prompts
from memory.extraction.llm_extractor import summarise_with_llm
from memory.extraction.types import TurnMessage

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
EXTRACTIVE_SUMMARY_CHARS = 1500


def extractive_summary(current: str, messages: list[working.WorkingMessage]) -> str:
    """Offline: the first sentence of each older user message, appended to the summary, newest kept."""
    points = []
    for message in messages:
        if message.role != "user" or not message.content.strip():
            continue
        first = _SENTENCE.split(message.content.strip(), maxsplit=1)[0]
        points.append(f"User said: {first[:200]}")
    summary = " ".join([current, *points]).strip() if current else " ".join(points)
    # Keep the end: the most recent points matter most when the summary is too long.
    return summary[-EXTRACTIVE_SUMMARY_CHARS:]


def compact_session(*, session_id: str, llm: LLM | None) -> int:
    """Fold the older messages into the summary when over the limit. Returns how many were folded."""
    session = working.get_session(session_id=session_id)
    if session is None or session.message_tokens <= settings.WORKING_MEMORY_TOKEN_LIMIT:
        return 0
    messages = working.get_messages(session_id=session_id)
    older = messages[: max(0, len(messages) - settings.WORKING_MEMORY_KEEP_MESSAGES)]
    if not older:
        return 0
    if llm is None:
        summary = extractive_summary(session.summary, older)
    else:
        turns = [TurnMessage(role=m.role, content=m.content, at=m.at) for m in older]
        summary = summarise_with_llm(
            llm, current=session.summary, messages=turns, prompt=prompts.COMPACTION_PROMPT
        )
    working.set_summary(session_id=session_id, summary=summary)
    # Drop exactly the folded messages: anything appended meanwhile stays.
    return working.drop_oldest_messages(session_id=session_id, count=len(older))
