"""Data passed between the extraction steps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from memory.types import MemoryType, Scope

# The stored shape of an extraction plan. A plan saved without a version is a version 1 plan (the
# shape before plans were typed, which version 1 still is); a worker refuses a plan of a version it
# does not know rather than half-apply it.
PLAN_VERSION = 1
ACTIONS = ("add", "update", "delete", "noop")
# What a no-op refused (Op.refused): nothing, or the change the target does not allow.
REFUSABLE = ("", "update", "delete")


class PlanError(ValueError):
    """A stored extraction plan that cannot be read: the job fails (retried, then dead-lettered)."""


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
    def from_dict(cls, data: Any, *, where: str = "candidate") -> Candidate:
        fields = _Fields(data, where=where)
        event_date = fields.get("event_date", (int, float), None)
        return cls(
            text=fields.text("text"),
            type=fields.choice("type", MemoryType, "semantic"),
            kind=fields.choice("kind", CandidateKind, "remember"),
            topics=fields.strings("topics"),
            entities=fields.strings("entities"),
            event_date=None if event_date is None else float(event_date),
            slot=fields.get("slot", str, ""),
            source_turn_ids=fields.strings("source_turn_ids"),
        )


@dataclass(frozen=True)
class Op:
    """One decision of a plan: what to do with a candidate, on which stored memory and why."""

    action: str  # one of ACTIONS
    candidate: Candidate
    target_id: str = ""
    text: str = ""
    reason: str = ""
    # A delete that also deletes the `message` memories the target was learned from: a user who
    # asks to forget a fact means the words too.
    with_source: bool = False
    # A no-op because the change it would be (`refused` = "update" or "delete") is not allowed on
    # the target (locked by staff, pinned): recorded in the target's history, never reported as done.
    refused: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "candidate": self.candidate.as_dict(),
            "target_id": self.target_id,
            "text": self.text,
            "reason": self.reason,
            "with_source": self.with_source,
            "refused": self.refused,
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "op") -> Op:
        fields = _Fields(data, where=where)
        action = fields.get("action", str)
        if action not in ACTIONS:
            raise PlanError(f"{where}: unknown action {action!r} (expected one of {', '.join(ACTIONS)})")
        refused = fields.get("refused", str, "", none_is_default=True)
        if refused not in REFUSABLE:
            raise PlanError(f"{where}: 'refused' must be 'update', 'delete' or empty, not {refused!r}")
        return cls(
            action=action,
            candidate=Candidate.from_dict(fields.get("candidate", dict), where=f"{where}.candidate"),
            target_id=fields.get("target_id", str, ""),
            text=fields.get("text", str, ""),
            reason=fields.get("reason", str, ""),
            with_source=fields.get("with_source", bool, False),
            refused=refused,
        )


@dataclass(frozen=True)
class PlanExtractor:
    """Who made the plan's decisions: the model (or "rules") and its prompt version."""

    model: str
    prompt_version: str


@dataclass(frozen=True)
class ExtractionPlan:
    """The decisions for a session's turns `from_seq`..`to_seq`, saved before any is applied, so a
    worker that takes the job over applies the same ones. A `summary` plan has no ops."""

    from_seq: int
    to_seq: int
    scope: Scope
    extractor: PlanExtractor
    strategy: str = ""
    source: list[str] = field(default_factory=list)  # the turn ids the plan was made from
    ops: list[Op] = field(default_factory=list)
    summary: str | None = None
    version: int = PLAN_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "from_seq": self.from_seq,
            "to_seq": self.to_seq,
            "strategy": self.strategy,
            "scope": {
                "user_id": self.scope.user_id,
                "agent_id": self.scope.agent_id,
                "namespace": self.scope.namespace,
            },
            "extractor": {"model": self.extractor.model, "prompt_version": self.extractor.prompt_version},
            "source": list(self.source),
            "ops": [op.as_dict() for op in self.ops],
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ExtractionPlan:
        """A plan as stored (any version this code knows); PlanError says what is wrong with junk."""
        fields = _Fields(data, where="plan")
        version = fields.get("version", int, 1)
        if not 1 <= version <= PLAN_VERSION:
            raise PlanError(f"plan: version {version} is not one this worker reads (1..{PLAN_VERSION})")
        scope = _Fields(fields.get("scope", dict), where="plan.scope")
        extractor = _Fields(fields.get("extractor", dict), where="plan.extractor")
        ops = fields.get("ops", list, [])
        return cls(
            version=version,
            from_seq=fields.get("from_seq", int),
            to_seq=fields.get("to_seq", int),
            strategy=fields.get("strategy", str, ""),
            scope=Scope(
                user_id=scope.get("user_id", str),
                agent_id=scope.get("agent_id", str, "engram"),
                namespace=scope.get("namespace", str, "default"),
            ),
            extractor=PlanExtractor(
                model=extractor.get("model", str), prompt_version=extractor.get("prompt_version", str)
            ),
            source=fields.strings("source"),
            ops=[Op.from_dict(op, where=f"plan.ops[{n}]") for n, op in enumerate(ops)],
            summary=fields.get("summary", str, None),
        )


_REQUIRED: Any = object()


class _Fields:
    """Typed reads of one stored JSON object, each failure a PlanError naming the field."""

    def __init__(self, data: Any, *, where: str) -> None:
        if not isinstance(data, Mapping):
            raise PlanError(f"{where}: expected an object, got {type(data).__name__}")
        self.data = data
        self.where = where

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = _REQUIRED,
        *,
        none_is_default: bool = False,
    ) -> Any:
        if key not in self.data or (none_is_default and self.data[key] is None):
            if default is _REQUIRED:
                raise PlanError(f"{self.where}: {key!r} is missing")
            return default
        value = self.data[key]
        if value is None and default is None:
            return None
        # JSON has no separate bool: True is not a sequence number.
        wrong_bool = isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
        if wrong_bool or not isinstance(value, kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise PlanError(f"{self.where}: {key!r} must be {names}, not {type(value).__name__}")
        return value

    def text(self, key: str) -> str:
        value: str = self.get(key, str)
        if not value.strip():
            raise PlanError(f"{self.where}: {key!r} is empty")
        return value

    def strings(self, key: str) -> list[str]:
        values = self.get(key, list, None) or []
        if not all(isinstance(v, str) for v in values):
            raise PlanError(f"{self.where}: {key!r} must be a list of strings")
        return list(values)

    def choice(self, key: str, enum: type[StrEnum], default: str) -> Any:
        value = self.get(key, str, default, none_is_default=True) or default
        try:
            return enum(value)
        except ValueError:
            raise PlanError(f"{self.where}: unknown {key} {value!r}") from None
