"""The engine bench's flat headline keys and its Markdown section for BENCHMARKS.md."""

from __future__ import annotations

from typing import Any

from bench.env import machine_line


def flatten_search(search: dict[str, dict[str, dict[str, Any]]]) -> dict[str, float]:
    """`search_p95_ms_100k` for hybrid, `semantic_p95_ms_100k` etc. for the other modes."""
    flat: dict[str, float] = {}
    for size, modes in search.items():
        for mode, row in modes.items():
            prefix = "search" if mode == "hybrid" else mode
            for pct in ("p50", "p95", "p99"):
                flat[f"{prefix}_{pct}_ms_{size}"] = row[f"{pct}_ms"]
    return flat


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def _row(label: str, value: str, target: dict[str, Any] | None = None) -> str:
    if target is None:
        return f"| {label} | {value} | | |"
    verdict = "✅ pass" if target["pass"] else "❌ fail"
    return f"| {label} | {value} | {target['target']} | {verdict} |"


def _percentiles(stats: dict[str, Any]) -> str:
    return f"p50 {_ms(stats['p50_ms'])} · p95 {_ms(stats['p95_ms'])} · p99 {_ms(stats['p99_ms'])}"


def _search_rows(result: dict[str, Any], checks: dict[str, dict[str, Any]]) -> list[str]:
    users = result["config"]["users"]
    rows = []
    for size, modes in result["search"].items():
        for mode, stats in modes.items():
            key = f"search_p95_ms_{size}" if mode == "hybrid" else ""
            per_user = result["config"]["small" if size == result["small_label"] else "large"] // users
            label = (
                f"Search {mode}, top-{result['config']['top_k']}, {size} memories "
                f"(~{per_user}/user, {stats['n']} queries)"
            )
            rows.append(_row(label, _percentiles(stats) + _search_costs(stats), checks.get(key)))
    return rows


def _search_costs(stats: dict[str, Any]) -> str:
    """Client CPU, Redis server time and round trips per query, where the run measured them."""
    parts = []
    if "client_cpu_ms" in stats:
        parts.append(f"client CPU p50 {_ms(stats['client_cpu_ms']['p50_ms'])}")
    if "server_ms_per_query" in stats:
        parts.append(f"server {_ms(stats['server_ms_per_query'])}")
    if "round_trips_per_query" in stats:
        parts.append(f"{stats['round_trips_per_query']:g} round trips")
    return f" ({', '.join(parts)})" if parts else ""


def _prompt_rows(result: dict[str, Any], checks: dict[str, dict[str, Any]]) -> list[str]:
    prompt = result["build_prompt"]
    cfg = result["config"]
    label = (
        f"build_prompt, local embedder, ~{cfg['large'] // cfg['users']}-memory user, "
        f"{prompt['session_messages']}-message session ({prompt['n']} calls)"
    )
    return [
        _row(label, _percentiles(prompt), checks.get("build_prompt_p95_ms")),
        _row("… of which embedding the message", _percentiles(prompt["embed_ms"])),
        _row("… everything but the embedding", _percentiles(prompt["without_embed_ms"])),
    ]


def _ingest_rows(result: dict[str, Any], checks: dict[str, dict[str, Any]]) -> list[str]:
    ingest = result["ingest"]
    sweep = " · ".join(f"{r['batch']}: {r['per_s']:,.0f}/s" for r in ingest["by_batch_size"])
    return [
        _row(
            f"Ingest, `add_memories` in batches of {ingest['used_batch']}, "
            f"{ingest['bulk']['memories']:,} memories up to {result['large_label']}",
            f"{result['ingest_per_s']:,.0f} memories/s",
            checks.get("ingest_per_s"),
        ),
        _row("Ingest by batch size (interleaved sweep, first memories)", sweep),
    ]


def _bytes_rows(result: dict[str, Any], checks: dict[str, dict[str, Any]]) -> list[str]:
    memory = result["memory"]
    samples = memory["memory_usage_samples"]
    index = memory["index_bytes_per_memory"]
    return [
        _row(
            f"Redis bytes per memory, 384 dims, {result['large_label']} memories "
            "(INFO used_memory delta, with history)",
            f"{result['bytes_per_memory']:,.0f} B",
            checks.get("bytes_per_memory"),
        ),
        _row(
            "… without history (delta after deleting history lists + stream)",
            f"{memory['bytes_per_memory_without_history']:,.0f} B",
        ),
        _row(
            "… memory hash (MEMORY USAGE) / vector index / rest of index (FT.INFO)",
            f"{samples['memory_hash_avg']:,.0f} B / {index.get('vector_index_sz_mb', 0):,.0f} B / "
            f"{memory['index_bytes_per_memory_total'] - index.get('vector_index_sz_mb', 0):,.0f} B",
        ),
        _row(
            "… history list / mutation stream (MEMORY USAGE)",
            f"{samples['history_list_avg']:,.0f} B / {samples['mutation_stream_per_memory']:,.0f} B",
        ),
    ]


def _top(by_command: dict[str, float], count: int = 3) -> str:
    ranked = sorted(by_command.items(), key=lambda kv: -kv[1])[:count]
    return ", ".join(f"{name} {us:,.0f} µs" for name, us in ranked)


def _search_line(result: dict[str, Any]) -> str | None:
    split = result.get("search_diagnosis", {}).get("split")
    if not split:
        return None
    timed = result["search"][result["large_label"]]["hybrid"]
    tail = ""
    if "client_cpu_ms" in timed:
        switches = timed["involuntary_context_switches_per_query"]
        preempted = switches["bench_process"] + switches["redis_server"]
        cpu_p95 = timed["client_cpu_ms"]["p95_ms"]
        tail = (
            f" Tail: wall p95 {timed['p95_ms']:.2f} ms vs client CPU p95 {cpu_p95:.2f} ms, "
            f"{preempted:.2f} involuntary context switches per query"
            + (" (the tail is mostly waiting for a core)." if preempted >= 0.5 else " (a quiet machine).")
        )
    return (
        f"- Hybrid search at {result['large_label']}: mean {split['wall_ms_mean']:.2f} ms in "
        f"{split['round_trips_per_query']:g} round trips = Redis server {split['server_ms_mean']:.2f} ms "
        f"({_top(split['server_us_by_command'])}) + redis-py and socket "
        f"{split['client_side_of_round_trip_ms_mean']:.2f} ms + engine Python "
        f"{split['engine_python_ms_mean']:.2f} ms.{tail}"
    )


def _ingest_line(result: dict[str, Any]) -> str | None:
    bulk = result["ingest"]["bulk"]
    server = bulk.get("server")
    if not server:
        return None
    wall_us = 1e6 / bulk["per_s"]
    side = result.get("storage_what_if", {}).get("side_indexes_over_engine_data", {})
    detail = ""
    if side:
        detail = (
            f" FT.INFO indexing time: {side['engine']['indexing_us_per_doc']:,.0f} µs per document, "
            f"{side['without_vector']['indexing_us_per_doc']:,.0f} µs of it without the vector field."
        )
    return (
        f"- Ingest: {wall_us:,.0f} µs per memory = Redis server {server['us_per_memory']:,.0f} µs "
        f"({_top(server['by_command_us_per_memory'])}) + client {wall_us - server['us_per_memory']:,.0f} µs "
        f"(engine Python, redis-py packing, socket).{detail}"
    )


def _prompt_line(result: dict[str, Any]) -> str | None:
    prompt = result["build_prompt"]
    server = prompt.get("server_per_call")
    if not server:
        return None
    return (
        f"- build_prompt: mean {prompt['mean_ms']:.1f} ms = embedding "
        f"{prompt['embed_ms']['mean_ms']:.1f} ms + the rest {prompt['without_embed_ms']['mean_ms']:.1f} ms, "
        "of which Redis server "
        f"{server['us_per_memory'] / 1000:.2f} ms ({_top(server['by_command_us_per_memory'])})."
    )


def _bytes_line(result: dict[str, Any]) -> str:
    memory = result["memory"]
    samples = memory["memory_usage_samples"]
    index = memory["index_bytes_per_memory"]
    vector = index.get("vector_index_sz_mb", 0.0)
    rest = memory["without_history_bytes_unattributed"]
    return (
        f"- Bytes per memory: hash {samples['memory_hash_avg']:,.0f} B + vector index {vector:,.0f} B + "
        f"rest of index {memory['index_bytes_per_memory_total'] - vector:,.0f} B (FT.INFO) + history list "
        f"{samples['history_list_avg']:,.0f} B + mutation stream "
        f"{samples['mutation_stream_per_memory']:,.0f} B; "
        f"{rest:,.0f} B of the measured total is in none of these (keyspace entries, index allocations "
        "FT.INFO does not report)."
    )


def _where_it_goes(result: dict[str, Any]) -> list[str]:
    """One line per cost centre, from the diagnosis passes (absent with --no-profile)."""
    lines = [_search_line(result), _ingest_line(result), _prompt_line(result), _bytes_line(result)]
    return [line for line in lines if line]


def markdown(result: dict[str, Any]) -> str:
    checks = {row["metric"]: row for row in result["targets"]}
    cfg = result["config"]
    vectors = result["vectors"]
    where = _where_it_goes(result)
    stem = "engine-quick" if result["quick"] else "engine"
    lines = [
        "## Memory engine",
        "",
        machine_line(result),
        "",
        "| metric | result | target | pass |",
        "|---|---|---|---|",
        *_search_rows(result, checks),
        *_prompt_rows(result, checks),
        *_ingest_rows(result, checks),
        *_bytes_rows(result, checks),
        "",
        f"Data: {cfg['small']:,} then {cfg['large']:,} memories from sentence templates over "
        f"{vectors['vocabulary_words']:,} words, spread at random over {cfg['users']:,} users. Vectors: a "
        f"pool of {vectors['pool_sentences']:,} sentences embedded with the local all-MiniLM-L6-v2 "
        f"({vectors['embed_sentences_per_s']:.0f} sentences/s in batches here), each memory = a pool "
        "vector + Gaussian noise, renormalised; search queries use real, precomputed embeddings. "
        "Latencies are client-side wall time on the same machine as Redis.",
        "",
        *(["Where the time goes:", "", *where, ""] if where else []),
        f"Raw numbers, profiles, FT.INFO and what-if experiments: `bench/results/{stem}.json`. "
        "Rerun: `make bench` (or `python -m bench --only engine [--quick]`).",
        "",
    ]
    return "\n".join(lines)
