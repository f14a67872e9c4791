"""The extraction bench's Markdown section."""

from __future__ import annotations

from typing import Any

from bench.env import machine_line


def _pcts(stats: dict[str, Any]) -> str:
    return f"p50 {stats['p50_ms']:.1f} ms · p95 {stats['p95_ms']:.1f} ms"


def _throughput_rows(runs: list[dict[str, Any]]) -> list[str]:
    rows = [
        "| run | turns / sessions | jobs (turns per job) | model calls (decision calls) | time "
        "| turns/s | jobs/s | per turn: wall · model calls · embedding |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        per = r["per_turn_ms"]
        decisions = r["scripted_calls"].get("decision_calls", 0)
        failed = f" · **{r['jobs_failed']} failed**" if r["jobs_failed"] else ""
        rows.append(
            f"| {r['label']} | {r['turns']} / {r['sessions']} | {r['jobs']} ({r['turns_per_job']:g}){failed} "
            f"| {r['llm_calls']} ({decisions}) | {r['seconds']:.1f} s | **{r['turns_per_s']:.1f}** "
            f"| {r['jobs_per_s']:.2f} "
            f"| {per['wall']:.1f} · {per['model_calls']:.1f} · {per['embedding']:.1f} ms |"
        )
    return rows


def _lag_rows(result: dict[str, Any]) -> list[str]:
    rows = [
        "| lag, enqueue → findable | turns | lag | lag minus the model call | model call |",
        "|---|---|---|---|---|",
    ]
    for entry in (result["lag"], result["lag_default_debounce"]):
        rows.append(
            f"| debounce {entry['debounce_s']:g} s | {entry['turns']} | {_pcts(entry['lag_ms'])} "
            f"| {_pcts(entry['lag_minus_model_calls_ms'])} | {_pcts(entry['llm_call_ms'])} |"
        )
    return rows


def _checks(result: dict[str, Any]) -> str:
    runs = result["throughput"]
    contradict = [r for r in runs if r["variant"] == "contradict"]
    updates = sum(r["outcomes"].get("update", 0) for r in contradict)
    planned = sum(r["contradicting_turns"] for r in contradict)
    verdict = (
        "all expected memories present"
        if result["memories_wrong"] == 0
        else (f"**{result['memories_wrong']} memories missing or not replaced**")
    )
    return (
        f"Checks: {result['pipeline_failures']} failed jobs or dead letters; {verdict}; "
        f"{updates} of {planned} contradicting turns became UPDATEs through the decision call."
    )


def _embeds_per_fact(result: dict[str, Any]) -> str:
    row = next(r for r in result["throughput"] if r["name"] == "distinct-1w")
    return f"{row['per_turn_ms']['embed_calls_per_turn']:g}"


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    probe = result["scripted_server_ms"]
    by_name = {row["name"]: row for row in result["throughput"]}
    rules = by_name["rules-1w"]["outcomes"]
    lines = [
        "## Background extraction",
        "",
        machine_line(result),
        "",
        f"Headline: **{result['turns_per_s_1_worker']:.1f} turns/s per worker** "
        f"({result['jobs_per_s_1_worker']:.2f} jobs/s, distinct facts, a session's "
        f"{cfg['turns'] // cfg['sessions']} turns arriving together), "
        f"{result['turns_per_s_one_turn_per_job']:.1f} turns/s when every turn is its own job; "
        f"lag from turn to searchable memory **p50 {result['lag_p50_ms']:.0f} ms · p95 "
        f"{result['lag_p95_ms']:.0f} ms** with debounce 0; the default debounce adds "
        f"{result['debounce_adds_p50_ms'] / 1000:.2f} s at p50.",
        "",
        *_throughput_rows(result["throughput"]),
        "",
        *_lag_rows(result),
        "",
        _checks(result),
        "",
        "How to read it:",
        "",
        "- The model is the scripted OpenAI-compatible server (`devtools/llm_server.py`) on loopback, in "
        f"this process: its round trip through the product's client is {_pcts(probe)} "
        f"({probe['n']} calls, nothing else running); subtract it per model call. The bench turns on "
        "TCP_NODELAY for the scripted server, as real model servers do: with the helper's default (Nagle "
        "on) each call waited ~40 ms for a delayed ACK. Embeddings are real "
        f"({result['embedding']['model']}, local, one torch thread), as in production.",
        "- Turns of one session queued together are extracted as ONE job (one extraction call over "
        "all of them), so jobs/s, not turns/s, is the rate for chat where turns arrive seconds apart; "
        "the one-turn-per-job row is that case.",
        "- Per-turn columns split the wall time: model calls and embedding are summed over worker "
        "threads (with 2 workers they overlap), the rest is Redis round trips and the pipeline's Python. "
        f"Each extracted fact is embedded {_embeds_per_fact(result)} times (the related-memory search "
        "embeds the candidate, then `add_memory` embeds the same text again).",
        "- Two worker threads share one interpreter (GIL) and the 2 cores with Redis and the scripted "
        "server; separate worker processes would scale better than the 2-thread rows.",
        "- The rules extractor (offline mode, no model): "
        + ", ".join(f"{count} {action}" for action, count in sorted(rules.items()))
        + " outcomes (the same decision step, without the model).",
        "- Lag is polled every "
        f"{cfg['poll_seconds'] * 1000:g} ms with `find_exact_duplicates`; a worker blocks at most "
        "0.5 s per read, so with a debounce the lag is the debounce plus up to 0.5 s.",
        "",
        "Raw numbers: `bench/results/extraction.json`. Rerun: `python -m bench --only extraction [--quick]`.",
        "",
    ]
    return "\n".join(lines)
