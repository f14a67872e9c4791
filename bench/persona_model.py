"""The scripted model for the persona suite's model run: a model that extracts perfectly.

No local model runs here, so the model path is measured with the scripted OpenAI-compatible server
(devtools/llm_server.py) answering as a good model would, from the suite itself:
- extraction: for each user line of the transcript, the statements (bench/personas/statements.json)
  of the facts said in it, with that line as the source;
- decisions: a fact that changes something (a `change` fact whose old value an existing memory
  names) updates that memory; one already stored is a no-op; anything else is added;
- chat: the reply reads back the memory lines of its system prompt, so "answered from memory"
  means the answer reached the model.
What this measures is the product around the model (queue, decisions, retrieval, prompt), not a
model's quality.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from bench.persona_data import Fact, Suite, load_statements, mentions

_LINE = re.compile(r"^#(\d+) \[[^\]]*\] user: (.*)$", re.MULTILINE)
_EXISTING = re.compile(r"^(m\d+): (.*)$", re.MULTILINE)
_NEW = re.compile(r"^(\d+): (.*)$", re.MULTILINE)
_DATED = re.compile(r"\bon (\d{1,2}) ([A-Z][a-z]+) (\d{4})\b")
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]  # fmt: skip


def _event_date(statement: str) -> str | None:
    match = _DATED.search(statement)
    if not match or match[2] not in _MONTHS:
        return None
    return f"{match[3]}-{_MONTHS.index(match[2]) + 1:02d}-{int(match[1]):02d}"


def responder(suites: Sequence[Suite]) -> Callable[[dict[str, Any]], Any]:
    from devtools.llm_server import Reply
    from memory.prompt import MEMORY_HEADER

    statements = load_statements()
    said: dict[str, list[Fact]] = {}
    by_statement: dict[str, Fact] = {}
    for suite in suites:
        for persona in suite.personas:
            for fact in persona.facts:
                if fact.id not in statements:
                    raise KeyError(f"bench/personas/statements.json has no statement for {fact.id}")
                message = " ".join(persona.chats[fact.chat].messages[fact.message].split())
                said.setdefault(message, []).append(fact)
                by_statement[statements[fact.id]] = fact

    def extraction(prompt: str) -> Any:
        memories = []
        for number, content in _LINE.findall(prompt):
            for fact in said.get(" ".join(content.split()), []):
                text = statements[fact.id]
                event_date = _event_date(text) if fact.kind == "date" else None
                memories.append({
                    "text": text, "type": "episodic" if event_date else "semantic", "topics": [fact.kind],
                    "entities": [], "event_date": event_date, "source": [int(number)],
                })  # fmt: skip
        return Reply(json.dumps({"memories": memories, "forget": []}))

    def decisions(prompt: str) -> Any:
        existing, new = prompt.split("New facts:", 1)
        shown = _EXISTING.findall(existing)
        out = []
        for number, text in _NEW.findall(new):
            fact = by_statement.get(text)
            same = next((short for short, old in shown if old == text), None)
            stale = next(
                (
                    short
                    for short, old in shown
                    if fact and fact.stale and mentions(old, (tuple(fact.stale),))
                ),
                None,
            )
            if same:
                out.append({"fact": int(number), "action": "NOOP", "id": same, "reason": "known"})
            elif stale:
                out.append(
                    {"fact": int(number), "action": "UPDATE", "id": stale, "text": text, "reason": "changed"}
                )
            else:
                out.append({"fact": int(number), "action": "ADD", "reason": "new"})
        return Reply(json.dumps({"decisions": out}))

    def chat(system: str) -> Any:
        block = system.split(MEMORY_HEADER, 1)[1].split("\n\n", 1)[0] if MEMORY_HEADER in system else ""
        lines = [line[2:] for line in block.strip().splitlines() if line.startswith("- ")]
        return Reply("From memory: " + " | ".join(lines) if lines else "I don't know that yet.")

    def respond(request: dict[str, Any]) -> Any:
        system = str(request["messages"][0].get("content") or "")
        prompt = str(request["messages"][-1].get("content") or "")
        if system.startswith("You extract"):
            return extraction(prompt)
        if system.startswith("You maintain"):
            return decisions(prompt)
        if "summary" in system.lower() or "summarise" in system.lower():
            return Reply(json.dumps({"summary": "The user chatted about their life."}))
        return chat(system)

    return respond
