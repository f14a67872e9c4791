"""Data passed between the extraction steps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from memory.types import MemoryType


@dataclass(frozen=True)
class TurnMessage:
    """One message of a finished chat turn, as queued for extraction."""

    role: str  # "user" | "assistant"
    content: str
    at: float  # epoch seconds; relative dates ("yesterday") resolve against this
    turn_id: str = ""


class CandidateKind(StrEnum):
    REMEMBER = "remember"  # a fact, preference or event to keep
    FORGET = "forget"  # the user asked to forget something
    # The user said something stopped being true ("I quit F45", "I sold the Elantra"): the text is
    # the thing; a stored memory that names it is retired.
    SUPERSEDE = "supersede"


@dataclass(frozen=True)
class Candidate:
    """A memory the extractor proposes, before it is compared with what is already stored.

    `slot` names a single-valued attribute (e.g. "location", "name", "job"): a new value for a
    slot replaces the old one instead of being added beside it.
    """

    text: str
    type: MemoryType = MemoryType.SEMANTIC
    kind: CandidateKind = CandidateKind.REMEMBER
    topics: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    event_date: float | None = None
    slot: str = ""
    source_turn_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = str(self.type)
        data["kind"] = str(self.kind)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(
            text=data["text"],
            type=MemoryType(data.get("type", "semantic")),
            kind=CandidateKind(data.get("kind", "remember")),
            topics=list(data.get("topics") or []),
            entities=list(data.get("entities") or []),
            event_date=data.get("event_date"),
            slot=data.get("slot", ""),
            source_turn_ids=list(data.get("source_turn_ids") or []),
        )
