"""Extraction plans are typed and versioned (issue 15, item 3): a plan stored before the types
(no `version`) still reads, and junk is a clear PlanError that ends as a dead letter, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest

from memory import keys
from memory.extraction import dead_letters, queue
from memory.extraction.types import PLAN_VERSION, ExtractionPlan, PlanError
from memory.types import MemoryType
from memory.worker import Worker
from tests.extraction_helpers import drain, say, texts

# A plan exactly as the worker saved it before plans were typed (no "version").
OLD_PLAN: dict[str, Any] = {
    "from_seq": 3,
    "to_seq": 4,
    "strategy": "discrete",
    "scope": {"user_id": "alice", "agent_id": "engram", "namespace": "default"},
    "extractor": {"model": "rules", "prompt_version": "rules-v2"},
    "source": ["t3", "t4"],
    "ops": [
        {
            "action": "add",
            "candidate": {
                "text": "User lives in Porto",
                "type": "semantic",
                "kind": "remember",
                "topics": ["location"],
                "entities": ["Porto"],
                "event_date": None,
                "slot": "location",
                "source_turn_ids": ["t4"],
            },
            "target_id": "",
            "text": "",
            "reason": "first location",
            "with_source": False,
            "refused": "",
        },
        {
            "action": "noop",
            "candidate": {
                "text": "User went to Lisbon",
                "type": "episodic",
                "kind": "remember",
                "topics": [],
                "entities": [],
                "event_date": 1764547200.0,
                "slot": "",
                "source_turn_ids": [],
            },
            "target_id": "01J0000000000000000000000",
            "text": "",
            "reason": "exact duplicate",
            "with_source": False,
            "refused": "",
        },
    ],
    "summary": None,
}


def test_an_old_plan_without_a_version_reads_as_version_1_and_writes_back_the_same() -> None:
    plan = ExtractionPlan.from_dict(OLD_PLAN)
    assert plan.version == 1 == PLAN_VERSION
    assert plan.scope.user_id == "alice" and plan.extractor.model == "rules"
    assert [op.action for op in plan.ops] == ["add", "noop"]
    assert plan.ops[1].candidate.type == MemoryType.EPISODIC
    assert plan.ops[1].candidate.event_date == 1764547200.0
    assert plan.as_dict() == {"version": 1, **OLD_PLAN}
    assert ExtractionPlan.from_dict(json.loads(json.dumps(plan.as_dict()))) == plan


def test_an_older_plan_with_fewer_keys_still_reads() -> None:
    """Plans saved before `refused`, `with_source` and `strategy` existed, and a candidate of text only."""
    plan = ExtractionPlan.from_dict(
        {
            "from_seq": 1,
            "to_seq": 1,
            "scope": {"user_id": "bob"},
            "extractor": {"model": "gpt", "prompt_version": "p1"},
            "source": ["t1"],
            "ops": [{"action": "add", "candidate": {"text": "User has a cat"}, "refused": None}],
        }
    )
    [op] = plan.ops
    assert op.candidate.text == "User has a cat" and op.candidate.type == MemoryType.SEMANTIC
    assert op.refused == "" and op.with_source is False
    assert plan.scope.agent_id == "engram" and plan.summary is None and plan.strategy == ""


def _with(path: str, value: Any) -> dict[str, Any]:
    plan = json.loads(json.dumps(OLD_PLAN))
    *parents, last = path.split(".")
    node: Any = plan
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return plan


@pytest.mark.parametrize(
    ("junk", "message"),
    [
        ("not a plan", "plan: expected an object, got str"),
        ([OLD_PLAN], "plan: expected an object, got list"),
        (_with("version", 99), "plan: version 99 is not one this worker reads"),
        (_with("from_seq", KeyError), "plan: 'from_seq' is missing"),
        (_with("to_seq", "4"), "plan: 'to_seq' must be int, not str"),
        (_with("from_seq", True), "plan: 'from_seq' must be int, not bool"),
        (_with("scope", None), "plan: 'scope' must be dict, not NoneType"),
        (_with("scope.user_id", 7), "plan.scope: 'user_id' must be str, not int"),
        (_with("extractor", {"model": "rules"}), "plan.extractor: 'prompt_version' is missing"),
        (_with("ops", {"action": "add"}), "plan: 'ops' must be list, not dict"),
        (_with("ops.0.action", "explode"), "plan.ops[0]: unknown action 'explode'"),
        (_with("ops.1.refused", "pin"), "plan.ops[1]: 'refused' must be 'update', 'delete' or empty"),
        (_with("ops.0.candidate", "User lives in Porto"), "plan.ops[0]: 'candidate' must be dict"),
        (_with("ops.0.candidate.text", "  "), "plan.ops[0].candidate: 'text' is empty"),
        (_with("ops.0.candidate.type", "dream"), "plan.ops[0].candidate: unknown type 'dream'"),
        (_with("ops.0.candidate.topics", "location"), "plan.ops[0].candidate: 'topics' must be list"),
        (_with("ops.0.candidate.entities", [1]), "'entities' must be a list of strings"),
        (_with("ops.1.candidate.event_date", "2025-12-01"), "'event_date' must be int or float"),
        (_with("source", ["t3", None]), "plan: 'source' must be a list of strings"),
        (_with("summary", 5), "plan: 'summary' must be str, not int"),
    ],
)
def test_junk_is_a_plan_error_that_names_what_is_wrong(junk: Any, message: str) -> None:
    with pytest.raises(PlanError) as raised:
        ExtractionPlan.from_dict(junk)
    assert message in str(raised.value)


@pytest.mark.parametrize("stored", [b"{not json", json.dumps({"from_seq": 1, "ops": []}).encode()])
def test_a_junk_saved_plan_is_retried_then_dead_lettered_with_the_turn_kept(
    redis_client: Any, settings: Any, stored: bytes
) -> None:
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0
    settings.EXTRACTION_RETRY_BACKOFF_SECONDS = 0
    settings.EXTRACTION_MAX_DELIVERIES = 2
    say("alice", "s1", "I live in Lisbon.")
    redis_client.set(keys.extraction("s1", "plan:1"), stored)

    drain(Worker(worker_id="w1"))

    [letter] = dead_letters.dead_letters()
    assert letter.error.startswith("plan: ")
    assert letter.turns[0].messages[0].content == "I live in Lisbon."
    assert texts("alice") == [], "nothing of the junk plan was applied"
    # The session is not stuck: its next turn is extracted with a fresh plan.
    say("alice", "s1", "I have a cat.")
    drain(Worker(worker_id="w1"))
    assert "User has a cat" in texts("alice")


def test_a_saved_plan_is_stored_with_its_version(redis_client: Any) -> None:
    queue.save_plan("s1", 3, ExtractionPlan.from_dict(OLD_PLAN))
    stored = json.loads(redis_client.get(keys.extraction("s1", "plan:3")))
    assert stored == {"version": PLAN_VERSION, **OLD_PLAN}
    assert queue.load_plan("s1", 3) == ExtractionPlan.from_dict(OLD_PLAN)
