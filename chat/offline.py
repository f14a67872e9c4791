"""The offline reply: with no model configured, answer from memory and say so.

It reads the same messages a model would get: the memory lines of the system prompt (what Engram
recalls) and the user's message (what the rules extractor will learn from it in the background).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from memory.prompt import MEMORY_HEADER

OFFLINE_PREFIX = "Offline mode (no language model is configured): I answer from memory only."
MAX_RECALLED = 5


def recalled_lines(system_prompt: str) -> list[str]:
    if MEMORY_HEADER not in system_prompt:
        return []
    block = system_prompt.split(MEMORY_HEADER, 1)[1].split("\n\n", 1)[0]
    lines = []
    for line in block.strip().splitlines():
        if line.startswith("- "):
            # "- [semantic] User lives in Porto" → "User lives in Porto"
            text = line[2:]
            if text.startswith("[") and "] " in text:
                text = text.split("] ", 1)[1]
            lines.append(text)
    return lines[:MAX_RECALLED]


def compose_reply(messages: Sequence[dict[str, Any]]) -> str:
    from memory.extraction.rules import extract_candidates
    from memory.extraction.types import CandidateKind, TurnMessage

    system = next((str(m.get("content") or "") for m in messages if m.get("role") == "system"), "")
    user = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    parts = [OFFLINE_PREFIX]
    recalled = recalled_lines(system)
    if recalled:
        parts.append("What I remember that seems relevant:\n" + "\n".join(f"• {line}" for line in recalled))
    else:
        parts.append("I don't remember anything relevant to this yet.")
    candidates = extract_candidates([TurnMessage("user", user, time.time())]) if user else []
    learned = [c.text for c in candidates if c.kind == CandidateKind.REMEMBER]
    forgotten = [c.text for c in candidates if c.kind == CandidateKind.FORGET]
    if learned:
        parts.append(
            "What I just learned (saved in the background):\n" + "\n".join(f"• {t}" for t in learned)
        )
    if forgotten:
        parts.append("I will forget: " + "; ".join(forgotten))
    return "\n\n".join(parts)
