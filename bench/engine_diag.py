"""Where the engine's time goes: wall time split into Redis server work (INFO commandstats), the
redis-py round trips and the engine's own Python, plus a cProfile of the hot functions, for
search, ingest and build_prompt.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import redis
import redis.client

from bench.engine_data import Query
from bench.redis_stats import reset_command_stats
from bench.stats import summarise_ms


@contextmanager
def timed_embedder(samples: list[float]) -> Iterator[None]:
    """Record the wall time of every `embed` call of the product's embedder while active."""
    from core.embeddings import get_embedder

    embedder = get_embedder()
    original = embedder.embed

    def embed(texts: Any) -> np.ndarray:
        started = time.perf_counter()
        try:
            return original(texts)
        finally:
            samples.append((time.perf_counter() - started) * 1000)

    # An instance attribute shadows the method; deleting it brings the method back.
    setattr(embedder, "embed", embed)  # noqa: B010 - mypy refuses assigning to a method
    try:
        yield
    finally:
        delattr(embedder, "embed")


@contextmanager
def timed_round_trips(samples: list[float]) -> Iterator[None]:
    """Record the wall time of every redis-py pipeline execute and single command while active."""
    pipeline_execute = redis.client.Pipeline.execute
    command_execute = redis.Redis.execute_command

    def timed(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                samples.append((time.perf_counter() - started) * 1000)

        return wrapper

    redis.client.Pipeline.execute = timed(pipeline_execute)
    redis.Redis.execute_command = timed(command_execute)
    try:
        yield
    finally:
        redis.client.Pipeline.execute = pipeline_execute
        redis.Redis.execute_command = command_execute


def top_functions(profile: cProfile.Profile, calls: int, limit: int = 18) -> list[dict[str, Any]]:
    """The functions with the most own time, per measured call (ms)."""
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append(
            {
                "function": f"{short}:{line}({name})",
                "calls_per_op": round(ncalls / calls, 1),
                "own_ms_per_op": round(tottime * 1000 / calls, 4),
                "cum_ms_per_op": round(cumtime * 1000 / calls, 4),
            }
        )
    rows.sort(key=lambda r: -r["own_ms_per_op"])
    return rows[:limit]


def cumulative(profile: cProfile.Profile, calls: int, names: tuple[str, ...]) -> dict[str, float]:
    """Inclusive ms per op of a few named functions (first match of each name)."""
    stats = pstats.Stats(profile)
    found: dict[str, float] = {}
    for (filename, _, name), (_, _, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        label = f"{filename.rsplit('/', 1)[-1]}:{name}"
        for wanted in names:
            if wanted == label and wanted not in found:
                found[wanted] = round(cumtime * 1000 / calls, 4)
    return found


# --- Ingest ------------------------------------------------------------------------------------


def all_command_stats(client: redis.Redis) -> dict[str, dict[str, float]]:
    out = {}
    for name, stats in client.info("commandstats").items():
        if isinstance(stats, dict):
            out[str(name).removeprefix("cmdstat_")] = {k: float(stats[k]) for k in ("calls", "usec")}
    return out


def server_time_per_item(client: redis.Redis, items: int) -> dict[str, Any]:
    """Server µs per ingested memory since the last CONFIG RESETSTAT, by command.

    EXEC's and EVAL's time already contain the commands they ran (counted under their own names
    too), so they are reported but not summed.
    """
    stats = all_command_stats(client)
    by_command = {
        name: round(row["usec"] / items, 2)
        for name, row in stats.items()
        if name not in {"multi", "config|resetstat"}
    }
    return {
        "us_per_memory": round(sum(v for name, v in by_command.items() if name not in {"exec", "eval"}), 1),
        "by_command_us_per_memory": dict(sorted(by_command.items(), key=lambda kv: -kv[1])),
        "calls_per_memory": {
            name: round(row["calls"] / items, 2) for name, row in stats.items() if name != "config|resetstat"
        },
    }


INGEST_FUNCTIONS = (
    "services.py:add_memories",
    "services.py:_prepare",
    "services.py:_queue_new",
    "events.py:memory_added",
    "events.py:record",
    "records.py:to_hash",
    "client.py:execute",
    "connection.py:pack_commands",
    "connection.py:send_packed_command",
    "client.py:_execute_transaction",
    "connection.py:read_response",
)


def profile_ingest(load: Callable[..., dict[str, Any]], count: int, batch: int) -> dict[str, Any]:
    """cProfile of `add_memories` alone (data generation excluded) + server time per memory."""
    from core.redis_client import get_redis

    client = get_redis()
    profile = cProfile.Profile()
    reset_command_stats(client)
    row = load(count, batch, label="profiled ingest", report_every=1, profile=profile)
    return {
        "memories": count,
        "batch": batch,
        "per_s_under_profiler": row["per_s"],
        "server": server_time_per_item(client, count),
        "inclusive_us_per_memory": {
            name: round(ms * 1000, 1) for name, ms in cumulative(profile, count, INGEST_FUNCTIONS).items()
        },
        "top_own_time_per_memory": top_functions(profile, count),
    }


# --- Search ------------------------------------------------------------------------------------


def _search(query: Query, top_k: int) -> Any:
    from memory.query import MemoryFilter
    from memory.search import search_memories

    return search_memories(
        filter=MemoryFilter.build(user_id=query.user_id),
        text=query.text,
        mode="hybrid",
        top_k=top_k,
        query_vector=query.vector,
    )


def split_search(queries: list[Query], top_k: int) -> dict[str, Any]:
    """Per query: Redis server time (commandstats, all commands), redis-py round trips (socket +
    reply parsing, measured around each pipeline execute), and the engine's own Python (the rest)."""
    from core.redis_client import get_redis

    client = get_redis()
    walls: list[float] = []
    trips: list[float] = []
    reset_command_stats(client)
    with timed_round_trips(trips):
        for query in queries:
            started = time.perf_counter()
            _search(query, top_k)
            walls.append((time.perf_counter() - started) * 1000)
    server = server_time_per_item(client, len(queries))
    n = len(queries)
    wall_mean = sum(walls) / n
    trip_mean = sum(trips) / n
    server_mean = server["us_per_memory"] / 1000
    return {
        "queries": n,
        "round_trips_per_query": round(len(trips) / n, 2),
        "wall_ms_mean": round(wall_mean, 3),
        "redis_round_trip_ms_mean": round(trip_mean, 3),
        "server_ms_mean": round(server_mean, 3),
        "server_us_by_command": server["by_command_us_per_memory"],
        "client_side_of_round_trip_ms_mean": round(trip_mean - server_mean, 3),
        "engine_python_ms_mean": round(wall_mean - trip_mean, 3),
        "share": {
            "server": round(server_mean / wall_mean, 3),
            "redis_py_and_socket": round((trip_mean - server_mean) / wall_mean, 3),
            "engine_python": round((wall_mean - trip_mean) / wall_mean, 3),
        },
    }


def profile_search(queries: list[Query], top_k: int) -> dict[str, Any]:
    profile = cProfile.Profile()
    profile.enable()
    for query in queries:
        _search(query, top_k)
    profile.disable()
    n = len(queries)
    return {
        "queries": n,
        "inclusive_ms_per_query": cumulative(
            profile,
            n,
            (
                "search.py:search_memories",
                "client.py:execute",
                "connection.py:read_response",
                "raw_search.py:run_pipeline",
                "raw_search.py:parse_reply",
                "raw_search.py:load_memories",
                "records.py:from_return_fields",
                "records.py:vector_from_bytes",
                "search.py:_score",
            ),
        ),
        "top_own_time": top_functions(profile, n),
    }


def diagnose_search(queries: list[Query], top_k: int) -> dict[str, Any]:
    half = max(1, len(queries) // 2)
    return {
        "split": split_search(queries[:half], top_k),
        "profile": profile_search(queries[half:], top_k),
    }


# --- build_prompt -------------------------------------------------------------------------------


def _prompt_calls(corpus: Any, sessions: list[tuple[str, str]], calls: int) -> list[tuple[str, str, str]]:
    return [(*sessions[i % len(sessions)], corpus.fresh_question()) for i in range(calls)]


def _run_prompts(plan: list[tuple[str, str, str]]) -> list[float]:
    from memory.prompt import build_prompt

    samples = []
    for session_id, user, message in plan:
        started = time.perf_counter()
        build_prompt(user_id=user, session_id=session_id, message=message)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def diagnose_prompt(corpus: Any, sessions: list[tuple[str, str]], calls: int) -> dict[str, Any]:
    """Round trips per call, a cProfile, and the embedding cost with torch on 1 thread vs default."""
    import torch

    trips: list[float] = []
    with timed_round_trips(trips):
        walls = _run_prompts(_prompt_calls(corpus, sessions, calls))
    profile = cProfile.Profile()
    profile.enable()
    _run_prompts(_prompt_calls(corpus, sessions, calls))
    profile.disable()

    default_threads = torch.get_num_threads()
    thread_runs: dict[str, Any] = {}
    try:
        for threads in sorted({1, os.cpu_count() or 1, default_threads}):
            torch.set_num_threads(threads)
            embeds: list[float] = []
            with timed_embedder(embeds):
                wall = _run_prompts(_prompt_calls(corpus, sessions, calls))
            thread_runs[f"torch_threads_{threads}"] = {
                "build_prompt": summarise_ms(wall),
                "embed": summarise_ms(embeds),
            }
    finally:
        torch.set_num_threads(default_threads)
    return {
        "calls": calls,
        "redis_round_trips_per_call": round(len(trips) / calls, 1),
        "redis_round_trip_ms_per_call": round(sum(trips) / calls, 3),
        "wall_ms_mean": round(sum(walls) / calls, 3),
        "inclusive_ms_per_call": cumulative(
            profile,
            calls,
            (
                "prompt.py:build_prompt",
                "search.py:search_memories",
                "embeddings.py:embed",
                "prompt.py:_pinned_hits",
                "working.py:get_session",
                "working.py:get_messages",
                "working.py:save_trace",
                "services.py:record_access",
                "tokens.py:count",
                "tokens.py:count_message",
            ),
        ),
        "top_own_time": top_functions(profile, calls),
        "torch_threads_in_use": default_threads,
        "by_torch_threads": thread_runs,
    }
