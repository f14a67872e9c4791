"""What a rule reports: a candidate and the part of the sentence it read (so the catch-all
statement rule leaves that part alone)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from memory.extraction.rules.text import Sentence
from memory.extraction.types import Candidate, CandidateKind
from memory.types import MemoryType


@dataclass(frozen=True)
class Found:
    candidate: Candidate
    start: int
    end: int


Rule = Callable[[Sentence], Iterable[Found]]


def fact(
    text: str,
    *,
    span: tuple[int, int],
    topics: Sequence[str],
    entities: Sequence[str] = (),
    slot: str = "",
    type_: MemoryType = MemoryType.SEMANTIC,
    kind: CandidateKind = CandidateKind.REMEMBER,
    event_date: float | None = None,
) -> Found:
    candidate = Candidate(
        text=text,
        type=type_,
        kind=kind,
        topics=list(topics),
        entities=[e for e in entities if e],
        event_date=event_date,
        slot=slot,
    )
    return Found(candidate, span[0], span[1])
