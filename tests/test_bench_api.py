"""The API bench's bookkeeping (bench/api.py): paths timed in turn with their own questions, the
HTTP layer's cost against the engine call that embeds, and a report that says what was skipped.
The bench itself loads 100K memories and runs minutes (`python -m bench --only api`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.api import Ask, _interleaved, _layer_costs, markdown

ROW = {"n": 3, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "mean_ms": 1.0, "max_ms": 3.0}


def test_every_path_is_timed_in_turn_on_its_own_questions() -> None:
    calls: list[tuple[str, str]] = []

    def path(name: str) -> Callable[[Ask], int]:
        def call(ask: Ask) -> int:
            calls.append((name, ask.text))
            return 2

        return call

    asks = {name: [Ask("u", f"{name}-{i}") for i in range(5)] for name in ("a", "b", "c")}
    out = _interleaved({name: (asks[name], path(name)) for name in asks}, warmup=2)
    assert calls[:6] == [("a", "a-0"), ("b", "b-0"), ("c", "c-0"), ("a", "a-1"), ("b", "b-1"), ("c", "c-1")]
    timed = calls[6:]
    # The order rotates each round, so no path always runs first (or right after another).
    assert [name for name, _ in timed] == ["c", "a", "b", "a", "b", "c", "b", "c", "a"]
    assert all(text.startswith(name) for name, text in timed), "each path asks only its own questions"
    assert {name: (row["n"], row["avg_hits"]) for name, row in out.items()} == {n: (3, 2.0) for n in "abc"}


def test_the_http_layer_is_measured_against_the_engine_call_that_embeds() -> None:
    out = {
        "engine_with_embedding": {**ROW, "p50_ms": 10.0, "p95_ms": 20.0},
        "http_ams_search": {**ROW, "p50_ms": 13.5, "p95_ms": 29.0},
        "http_rest_search": {"skipped": "/api/v1/search answered 404"},
    }
    assert _layer_costs(out) == {"http_ams_search": {"p50": 3.5, "p95": 9.0}}


def test_the_report_names_every_path_and_what_was_skipped() -> None:
    result: dict[str, Any] = {
        "config": {"memories": 100_000, "users": 1_000, "top_k": 20, "queries": 400, "warmup": 40},
        "machine": {
            "cpu_model": "cpu",
            "cores": 2,
            "ram_gb": 8,
            "python": "3.11",
            "date": "d",
            "git_commit": "abc",
            "git_dirty": False,
        },
        "versions": {"redis": "8.2", "search": "2.10"},
        "quick": False,
        "load_average_start": [1.0],
        "load_average_end": [1.0],
        "engine_vector_given": ROW,
        "engine_with_embedding": ROW,
        "http_rest_search": {"skipped": "/api/v1/search answered 404"},
        "http_ams_search": ROW,
        "http_health": ROW,
        "http_key_check": ROW,
        "http_layer_ms": {"http_ams_search": {"p50": 0.0, "p95": 0.0}},
        "server_errors": [],
    }
    text = markdown(result)
    assert "/api/v1/search answered 404" in text
    assert (
        "| HTTP POST /v1/long-term-memory/search (agent-memory-client API, app key) | 1.00 ms | 2.00 ms"
        in text
    )
    assert "HTTP layer of POST /v1/long-term-memory/search: +0.00 ms at p50" in text
    assert "Server log errors during the run: 0." in text
