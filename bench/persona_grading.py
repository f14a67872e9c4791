"""Grading a persona run: facts learned, questions answered from memory, per fact kind.

A transport (in-process turns, or the chat WebSocket) produces a `PersonaOutcome` per persona: the
texts of the memories stored for the user after all chats (messages aside), and each question's
answer text (the offline reply, or the memory block the model was given). Grading never looks at
anything else.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.persona_data import Fact, Persona, Suite, mentions, mentions_any


@dataclass
class PersonaOutcome:
    persona: Persona
    fact_memories: list[str]  # texts of the user's non-message memories after all chats
    answers: dict[str, str]  # question text -> what the user was shown (or the model was given)
    broad_answers: dict[str, str] = field(default_factory=dict)
    turn_errors: list[str] = field(default_factory=list)


def _share(hits: int, total: int) -> float:
    return round(100 * hits / total, 1) if total else 0.0


@dataclass
class _Tally:
    hits: int = 0
    total: int = 0

    def add(self, ok: bool) -> None:
        self.total += 1
        self.hits += int(ok)

    def summary(self) -> dict[str, Any]:
        return {"percent": _share(self.hits, self.total), "hits": self.hits, "total": self.total}


def _stale_kept(fact: Fact, memories: list[str]) -> bool:
    """A change whose old value is still stated as a fact beside (or instead of) the new one."""
    return any(
        mentions(text, ((old,),)) and not mentions(text, fact.expect)
        for text in memories
        for old in fact.stale
    )


def grade(suite: Suite, outcomes: list[PersonaOutcome]) -> dict[str, Any]:
    learned, answered, changes = _Tally(), _Tally(), _Tally()
    by_kind: dict[str, dict[str, _Tally]] = defaultdict(lambda: {"learned": _Tally(), "answered": _Tally()})
    broad = _Tally()
    misses: dict[str, list[dict[str, Any]]] = {"not_learned": [], "not_answered": []}
    errors: list[str] = []
    for outcome in outcomes:
        persona = outcome.persona
        errors += outcome.turn_errors
        for fact in persona.facts:
            said = persona.chats[fact.chat].messages[fact.message]
            ok = mentions_any(outcome.fact_memories, fact.expect)
            learned.add(ok)
            by_kind[fact.kind]["learned"].add(ok)
            if not ok:
                misses["not_learned"].append({"fact": fact.id, "kind": fact.kind, "said": said})
            if fact.stale:
                changes.add(ok and not _stale_kept(fact, outcome.fact_memories))
            for question in fact.questions:
                reply = outcome.answers.get(question.text, "")
                hit = mentions(reply, question.answer)
                answered.add(hit)
                by_kind[fact.kind]["answered"].add(hit)
                if not hit:
                    misses["not_answered"].append(
                        {
                            "fact": fact.id,
                            "kind": fact.kind,
                            "said": said,
                            "question": question.text,
                            "reply": reply[:600],
                        }
                    )
        # A broad question ("what do you know about me?") should bring back the learned facts.
        known = [f for f in persona.facts if mentions_any(outcome.fact_memories, f.expect)]
        for broad_question in persona.broad_questions:
            reply = outcome.broad_answers.get(broad_question, "")
            for fact in known:
                broad.add(mentions(reply, fact.expect))
    return {
        "suite": suite.name,
        "personas": len(suite.personas),
        "facts": len(suite.facts),
        "questions": len(suite.questions),
        "facts_learned": learned.summary(),
        "questions_answered": answered.summary(),
        "changes_applied": changes.summary(),
        "broad_questions_recall": broad.summary(),
        "by_kind": {
            kind: {name: tally.summary() for name, tally in tallies.items()}
            for kind, tallies in sorted(by_kind.items())
        },
        "turn_errors": errors,
        "misses": misses,
    }
