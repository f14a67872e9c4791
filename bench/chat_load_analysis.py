"""The chat load bench's per-turn arithmetic, and where the CPU and Redis time went.

Every timestamp is `time.time()` on one machine: the client's (send, first delta, done), the
scripted model's (request received, first content chunk and last chunk written) and daphne's
retrieval trace (`at` = when `build_prompt` started, `took_ms` = how long it ran). Per turn:

    total      = done - send
    model      = last chunk written - request received          (the LLM's own time)
    overhead   = total - model                                   (everything the server adds)
      before_prompt  = trace.at - send          frame in, dedupe + rate limit, save the message,
                                                `turn_started`, waiting for a thread-pool slot
      build_prompt   = trace.took_ms            embed the message, search, assemble, save trace
      prompt_to_model = received - (trace.at + took)   back to the event loop, open the stream
      after_model    = done - last chunk        read the tail of the stream, save the reply,
                                                queue extraction, `done` through the channel layer
    ttft       = first delta - send
    delta_delivery = first delta - first content chunk written   (model → client, one chunk)
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from bench.chat_load_client import ClientResult, TurnRecord
from bench.chat_load_llm import StreamTiming
from bench.stats import summarise_ms

SEGMENTS = ("before_prompt", "build_prompt", "prompt_to_model", "after_model")


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process (all its threads) from /proc; 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def redis_command_stats(client: redis.Redis, *, turns: int, top: int = 8) -> dict[str, Any]:
    """Server-side Redis time since the last CONFIG RESETSTAT, per turn, with the busiest commands."""
    rows = []
    for name, stats in client.info("commandstats").items():
        if isinstance(stats, dict):
            rows.append((str(name).removeprefix("cmdstat_"), int(stats["calls"]), int(stats["usec"])))
    rows.sort(key=lambda row: row[2], reverse=True)
    return {
        "calls_per_turn": round(sum(r[1] for r in rows) / turns, 1),
        "usec_per_turn": round(sum(r[2] for r in rows) / turns, 1),
        "top": [
            {
                "command": name,
                "calls_per_turn": round(calls / turns, 2),
                "usec_per_turn": round(usec / turns, 1),
            }
            for name, calls, usec in rows[:top]
        ],
    }


def _segments(turn: TurnRecord, model: StreamTiming, trace: dict[str, Any] | None) -> dict[str, float]:
    if trace is None:
        return {}
    at, took = float(trace["at"]), float(trace["took_ms"]) / 1000
    return {
        "before_prompt": (at - turn.sent_at) * 1000,
        "build_prompt": took * 1000,
        "prompt_to_model": (model.received_at - at - took) * 1000,
        "after_model": (turn.done_at - model.ended_at) * 1000,
        "search_incl_embedding": float(trace.get("search_ms", 0.0)),
    }


def _errors(results: list[ClientResult], expected_turns: int) -> Counter[str]:
    errors: Counter[str] = Counter()
    for result in results:
        if result.connect_error:
            errors[f"connect: {result.connect_error[:120]}"] += 1
        for turn in result.turns:
            if turn.error:
                errors[turn.error[:160]] += 1
    attempted = sum(len(r.turns) for r in results)
    if attempted < expected_turns:
        errors["turns never sent (client stopped early)"] += expected_turns - attempted
    return errors


def analyse(
    results: list[ClientResult],
    timings: dict[str, StreamTiming],
    traces: dict[str, dict[str, Any]],
    *,
    expected_turns: int,
) -> dict[str, Any]:
    samples: dict[str, list[float]] = {
        name: [] for name in ("total", "model", "overhead", "ttft", "delta_delivery", *SEGMENTS)
    }
    samples["search_incl_embedding"] = []
    completed = missing_model = missing_trace = deltas = 0
    first_send, last_done = float("inf"), 0.0
    for turn in (t for r in results for t in r.turns):
        if turn.error or not turn.done_at:
            continue
        completed += 1
        deltas += turn.deltas
        first_send, last_done = min(first_send, turn.sent_at), max(last_done, turn.done_at)
        model = timings.get(turn.text)
        if model is None:
            missing_model += 1
            continue
        total = (turn.done_at - turn.sent_at) * 1000
        llm = (model.ended_at - model.received_at) * 1000
        samples["total"].append(total)
        samples["model"].append(llm)
        samples["overhead"].append(total - llm)
        samples["ttft"].append((turn.first_delta_at - turn.sent_at) * 1000)
        samples["delta_delivery"].append((turn.first_delta_at - model.first_content_at) * 1000)
        trace = traces.get(turn.text)
        missing_trace += trace is None
        for name, value in _segments(turn, model, trace).items():
            samples[name].append(value)
    errors = _errors(results, expected_turns)
    samples_of_failures = [
        {
            "client": turn.client,
            "turn": turn.turn,
            "error": turn.error,
            "turn_started": bool(turn.started_at),
            "deltas": turn.deltas,
            "model_call_recorded": turn.text in timings,
            "trace_recorded": turn.text in traces,
        }
        for turn in (t for r in results for t in r.turns)
        if turn.error
    ][:10]
    # A turn that finished without a model call on record was not served as the bench assumes.
    if missing_model:
        errors["turn without a recorded model call"] += missing_model
    connects = [r.connect_ms for r in results if not r.connect_error]
    span = last_done - first_send if completed else 0.0
    return {
        "clients": len(results),
        "turns_expected": expected_turns,
        "turns_completed": completed,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(10)),
        # What the failed turns got before failing: tells a lost frame from a stuck server.
        "failed_turns": samples_of_failures,
        "turns_without_trace": missing_trace,
        # turn_started + the deltas + done: each one a group_send through the channel layer
        "frames_per_turn": round(2 + deltas / completed, 1) if completed else 0.0,
        "throughput_turns_per_s": round(completed / span, 2) if span else 0.0,
        "connect_ms": summarise_ms(connects),
        "total_ms": summarise_ms(samples["total"]),
        "model_ms": summarise_ms(samples["model"]),
        "overhead_ms": summarise_ms(samples["overhead"]),
        "ttft_ms": summarise_ms(samples["ttft"]),
        "delta_delivery_ms": summarise_ms(samples["delta_delivery"]),
        "segments_ms": {name: summarise_ms(samples[name]) for name in (*SEGMENTS, "search_incl_embedding")},
    }
