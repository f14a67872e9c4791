"""Prompts for LLM extraction. Bump PROMPT_VERSION when a prompt changes: history records it."""

from __future__ import annotations

from memory.topics import TOPICS

PROMPT_VERSION = "extract-v3"

_OUTPUT = (
    'Answer with JSON only: {"memories": [{"text": str, "type": "semantic" | "episodic" | "procedural", '
    '"topics": [str], "entities": [str], "event_date": "YYYY-MM-DD" or null, "source": [int]}], '
    '"forget": [str]}. "source" lists the numbers (#n) of the transcript lines the memory comes from. '
    '"forget" lists things the user asked you to forget (empty when none).'
)

_TOPICS = ", ".join(TOPICS)

_RULES = (
    "Write each memory as one short self-contained sentence in the third person starting with 'User' "
    "(e.g. 'User lives in Porto'). Resolve pronouns and relative dates ('yesterday', 'last week') against "
    "the date shown on each message; put the resolved date in event_date for events. Use 'semantic' for "
    "facts and preferences, 'episodic' for dated events, 'procedural' for instructions on how the assistant "
    "should behave. Only keep what the user said about themselves or asked you to remember; ignore the "
    "assistant's own statements, small talk and questions. Return an empty list when there is nothing. "
    f"Give each memory one or two topics from: {_TOPICS}."
)

STRATEGY_PROMPTS = {
    "discrete": (
        "You extract long-term memories about the user from a conversation: facts, preferences and events. "
        + _RULES
        + " "
        + _OUTPUT
    ),
    "preferences": (
        "You extract only the user's preferences (likes, dislikes, preferred ways of doing things) from a "
        "conversation. " + _RULES + " " + _OUTPUT
    ),
}

SUMMARY_PROMPT = (
    "You keep a rolling summary of a conversation for long-term memory. Given the current summary and new "
    "messages, write the updated summary: at most 120 words, third person ('User …'), facts and decisions "
    'only. Answer with JSON only: {"summary": str}.'
)

DECISION_PROMPT = (
    "You maintain a user's long-term memory. For each new fact, compare it with the existing memories and "
    "decide one action: ADD (new information), UPDATE (it changes, corrects or refines an existing memory: "
    "give that memory's id and the full new text), DELETE (it says an existing memory is no longer true and "
    "gives no replacement: give the id), NOOP (already known). A contradiction such as a new home town is an "
    "UPDATE of the old memory, not an ADD. Only use ids from the list. Answer with JSON only: "
    '{"decisions": [{"fact": int, "action": "ADD" | "UPDATE" | "DELETE" | "NOOP", "id": str | null, '
    '"text": str | null, "reason": str}]}.'
)

COMPACTION_PROMPT = (
    "Summarise the earlier part of a conversation so the assistant can continue it: at most 150 words, keep "
    "facts, decisions, open questions and the user's preferences. Start from the existing summary if there "
    'is one. Answer with JSON only: {"summary": str}.'
)


def custom_prompt(user_prompt: str) -> str:
    return user_prompt.strip() + " " + _RULES + " " + _OUTPUT
