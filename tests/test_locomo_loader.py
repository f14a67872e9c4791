"""The LoCoMo loader and metric (bench/locomo.py): evidence quirks, session times, recall@k."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import bench.eval
from bench import locomo
from memory.prompt import MEMORY_HEADER
from memory.selectors import get_memory
from tests.memory_helpers import ANYONE

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "locomo10.json"


def _turn(speaker: str, dia_id: str, text: str, **extra: str) -> dict[str, Any]:
    return {"speaker": speaker, "dia_id": dia_id, "text": text, **extra}


def _sample(qa: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A two-session conversation with the data set's quirks (image turn, a dated session without turns)."""
    return {
        "sample_id": "conv-t",
        "conversation": {
            "speaker_a": "Ann",
            "speaker_b": "Bob",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                _turn("Ann", "D1:1", "Hi Bob! I adopted a puppy."),
                _turn("Bob", "D1:2", "Congrats!", blip_caption="a photo of a dog on a sofa"),
            ],
            "session_2_date_time": "10:04 am on 19 June, 2023",
            "session_2": [_turn("Ann", "D2:1", "The puppy is called Rex."), _turn("Bob", "D2:2", "Nice.")],
            "session_3_date_time": "9:00 am on 1 July, 2023",
        },
        "qa": qa or [],
    }


# --- Evidence ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("piece", "expected"),
    [
        ("D8:6", "D8:6"),
        ("D30:05", "D30:5"),
        ("D:11:26", "D11:26"),
        (" D2:1 ", "D2:1"),
        ("D", None),
        ("", None),
        ("8:6", None),
        ("D8", None),
    ],
)
def test_normalise_dia_id(piece: str, expected: str | None) -> None:
    assert locomo.normalise_dia_id(piece) == expected


def test_split_evidence_handles_semicolons_and_spaces() -> None:
    assert locomo.split_evidence(["D8:6; D9:17"]) == ["D8:6", "D9:17"]
    assert locomo.split_evidence(["D9:1 D4:4 D4:6", "D2:3"]) == ["D9:1", "D4:4", "D4:6", "D2:3"]
    assert locomo.split_evidence([]) == []


def test_resolve_evidence_normalises_and_skips_ids_of_no_turn() -> None:
    known = ["D1:1", "D1:2", "D11:26", "D30:5", "D8:6", "D9:17"]
    evidence = locomo.resolve_evidence(["D8:6; D9:17", "D:11:26", "D30:05", "D10:19", "D", "D8:6"], known)
    assert evidence.ids == ("D8:6", "D9:17", "D11:26", "D30:5")  # the repeated D8:6 counts once
    assert evidence.skipped == ("D10:19", "D")


def test_evidence_pointing_only_at_missing_turns_leaves_none() -> None:
    assert locomo.resolve_evidence(["D4:36"], ["D4:35"]).ids == ()


# --- Session times ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56, tzinfo=UTC)),
        ("10:04 am on 19 December, 2023", datetime(2023, 12, 19, 10, 4, tzinfo=UTC)),
        ("12:09 am on 13 October, 2023", datetime(2023, 10, 13, 0, 9, tzinfo=UTC)),
        ("12:30 pm on 1 January, 2024", datetime(2024, 1, 1, 12, 30, tzinfo=UTC)),
        ("7:05 PM on 2 february, 2022", datetime(2022, 2, 2, 19, 5, tzinfo=UTC)),
    ],
)
def test_parse_session_time(text: str, expected: datetime) -> None:
    assert locomo.parse_session_time(text) == expected.timestamp()


@pytest.mark.parametrize(
    "text", ["", "13:00 pm on 8 May, 2023", "1:56 pm on 8 Mai, 2023", "8 May 2023", "1:56 on 8 May, 2023"]
)
def test_parse_session_time_rejects_other_formats(text: str) -> None:
    with pytest.raises(ValueError, match="session time"):
        locomo.parse_session_time(text)


# --- Conversations ------------------------------------------------------------------------------


def test_parse_conversation_turns_sessions_and_questions() -> None:
    qa = [
        {"question": "What is the puppy called?", "answer": "Rex", "evidence": ["D2:1"], "category": 4},
        {"question": "What did Bob share?", "answer": "a photo", "evidence": ["D1:2; D9:9"], "category": 1},
        {"question": "Who is Ann's favourite author?", "evidence": [], "category": 3},
        {
            "question": "What did Bob adopt?",
            "adversarial_answer": "a puppy",
            "evidence": ["D"],
            "category": 5,
        },
    ]
    conversation = locomo.parse_conversation(_sample(qa))

    assert conversation.sample_id == "conv-t"
    assert [s.number for s in conversation.sessions] == [1, 2]  # session 3 has a date but no turns
    turns = conversation.turns
    assert [t.dia_id for t in turns] == ["D1:1", "D1:2", "D2:1", "D2:2"]
    assert turns[0].text == "Ann: Hi Bob! I adopted a puppy."
    assert turns[1].text == "Bob: Congrats! [shares a photo of a dog on a sofa]"
    start = datetime(2023, 5, 8, 13, 56, tzinfo=UTC).timestamp()
    assert turns[0].timestamp == start
    assert turns[1].timestamp == start + locomo.TURN_SPACING_SECONDS  # keeps the order within a session
    assert conversation.end_time == turns[-1].timestamp

    evidence = [q.evidence.ids for q in conversation.questions]
    assert evidence == [("D2:1",), ("D1:2",), (), ()]
    assert [q.category_name for q in conversation.questions] == [
        "single-hop",
        "multi-hop",
        "open-domain",
        "adversarial",
    ]


def _scope_ids(conversation: locomo.Conversation) -> list[str]:
    """Every id the loaders file memories under: user (sample id), agent, namespace, sessions."""
    from bench.locomo_e2e import turn_id

    ids = [conversation.sample_id, locomo.AGENT_ID, locomo.NAMESPACE, f"{conversation.sample_id}-questions"]
    ids += [locomo.session_id(conversation, session) for session in conversation.sessions]
    assert turn_id(conversation, "D1:1") == f"{conversation.sample_id}-D1:1"  # a source, no scope
    return ids


def test_the_loaders_ids_are_valid_scope_ids_and_a_bad_sample_id_is_refused_up_front() -> None:
    from memory.query import validate_scope_id

    for value in _scope_ids(locomo.parse_conversation(_sample())):
        assert validate_scope_id(value, name="id") == value
    for bad in ("conv 1, conv 2", "conv-1 "):
        with pytest.raises(ValueError, match="cannot be a user id: sample_id may not"):
            locomo.parse_conversation({**_sample(), "sample_id": bad})


def test_category_mapping_is_the_papers() -> None:
    assert locomo.CATEGORIES == {
        1: "multi-hop",
        2: "temporal",
        3: "open-domain",
        4: "single-hop",
        5: "adversarial",
    }


def test_unknown_category_is_an_error() -> None:
    with pytest.raises(ValueError, match="categories"):
        locomo.parse_conversation(_sample([{"question": "?", "evidence": [], "category": 6}]))


def test_turn_text_without_text_keeps_the_caption() -> None:
    assert locomo.turn_text("Ann", "", "a photo of a cat") == "Ann: [shares a photo of a cat]"


def test_load_locomo_reads_a_file_and_explains_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps([_sample()]))
    assert [c.sample_id for c in locomo.load_locomo(path)] == ["conv-t"]
    with pytest.raises(FileNotFoundError, match="--data"):
        locomo.load_locomo(tmp_path / "missing.json")


def test_make_eval_fails_clearly_without_data(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="LoCoMo data not found"):
        bench.eval.main(["--data", str(tmp_path / "missing.json"), "--results-dir", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_engine_package_holds_no_evaluation_code() -> None:
    memory_package = Path(__file__).resolve().parents[1] / "memory"
    assert not (memory_package / "locomo.py").exists()
    assert not (memory_package / "management" / "commands" / "locomo_eval.py").exists()


# --- Metric and context -------------------------------------------------------------------------


def test_evidence_recall() -> None:
    retrieved = ["D1:1", "D2:1", "D3:3", "D4:4"]
    assert locomo.evidence_recall(retrieved, ("D2:1", "D4:4"), 2) == 0.5
    assert locomo.evidence_recall(retrieved, ("D2:1", "D4:4"), 4) == 1.0
    assert locomo.evidence_recall(retrieved, ("D9:9",), 4) == 0.0
    assert locomo.evidence_recall([], ("D9:9",), 10) == 0.0


def test_no_evidence_scores_one() -> None:
    assert locomo.evidence_recall(["D1:1"], (), 5) == 1.0
    assert locomo.evidence_recall([], (), 5) == 1.0


def test_full_history_has_session_headers_and_speaker_lines() -> None:
    text = locomo.full_history_text(locomo.parse_conversation(_sample()))
    assert text.startswith("Session 1 (1:56 pm on 8 May, 2023):\nAnn: Hi Bob! I adopted a puppy.\n")
    assert "\n\nSession 2 (10:04 am on 19 June, 2023):\nAnn: The puppy is called Rex.\nBob: Nice." in text


def test_progress_prints_one_line_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = locomo.Progress("load", 3, stream=stream)
    progress.advance(2)
    progress.advance()
    progress.close()
    assert stream.getvalue().count("\n") == 1
    assert "3/3" in stream.getvalue()


def test_questions_run_through_the_engine() -> None:
    """End to end on the fixture: turns become memories, search finds the evidence turn."""
    qa = [{"question": "What is the name of the puppy?", "evidence": ["D2:1"], "category": 4}]
    conversation = locomo.parse_conversation(_sample(qa))
    dia_ids = locomo.load_into_engine([conversation])
    assert sorted(dia_ids.values()) == ["D1:1", "D1:2", "D2:1", "D2:2"]
    # Each LoCoMo session is one chat session: the conversation context groups turns by it.
    sessions = {dia: get_memory(owner=ANYONE, memory_id=mid).scope.session_id for mid, dia in dia_ids.items()}
    assert sessions == {"D1:1": "conv-t-s1", "D1:2": "conv-t-s1", "D2:1": "conv-t-s2", "D2:2": "conv-t-s2"}

    spec = locomo.DEFAULT_RUNS[0]
    run = locomo.run_questions(spec, [conversation], dia_ids, measure_context=True)
    [result] = run.questions
    assert sorted(result.retrieved) == ["D1:1", "D1:2", "D2:1", "D2:2"]  # threshold 0: every turn
    assert result.recall[5] == 1.0
    assert result.context is not None
    assert 0 < result.context.tokens_by_k[5] == result.context.tokens_by_k[10]  # only 4 turns to show
    summary = locomo.summarise_recall(run.questions)
    assert summary["recall_at_10"] == 100.0
    assert summary["by_category"]["single-hop"]["recall_at_10"] == 100.0


def test_memory_context_is_the_chats_block() -> None:
    conversation = locomo.parse_conversation(_sample())
    dia_ids = locomo.load_into_engine([conversation])
    spec = locomo.RunSpec("t", "keyword", "")
    question = locomo.Question("puppy", 4, locomo.Evidence((), ()))
    hits, _ = locomo._search(conversation, question, spec)
    block = locomo.memory_context([h.memory for h in hits])
    lines = block.splitlines()
    assert lines[0] == MEMORY_HEADER
    assert {line for line in lines[1:]} == {
        "- [said on 8 May 2023] Ann: Hi Bob! I adopted a puppy.",
        "- [said on 19 June 2023] Ann: The puppy is called Rex.",
    }
    assert len(dia_ids) == 4


# --- The real file (skipped where ../shared/data is absent) -------------------------------------


@pytest.mark.skipif(not REAL_DATA.is_file(), reason="LoCoMo data not present")
def test_real_file_matches_the_readme_counts() -> None:
    conversations = locomo.load_locomo(REAL_DATA)
    questions = [q for c in conversations for q in c.questions]
    assert len(conversations) == 10
    assert sum(len(c.sessions) for c in conversations) == 272
    assert sum(len(c.turns) for c in conversations) == 5882
    assert len(questions) == 1986
    counts = {
        name: sum(1 for q in questions if q.category_name == name) for name in locomo.CATEGORIES.values()
    }
    assert counts == {
        "multi-hop": 282,
        "temporal": 321,
        "open-domain": 96,
        "single-hop": 841,
        "adversarial": 446,
    }
    assert sum(1 for q in questions if not q.evidence.ids) == 4  # the empty category-3 items
    skipped = sorted((c.sample_id, s) for c in conversations for q in c.questions for s in q.evidence.skipped)
    assert skipped == [("conv-42", "D"), ("conv-42", "D10:19"), ("conv-47", "D4:36")]
    from memory.query import validate_scope_id

    for value in (v for c in conversations for v in _scope_ids(c)):
        assert validate_scope_id(value, name="id") == value
