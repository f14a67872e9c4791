"""Memory engine benchmark: search latency, prompt assembly latency, ingest rate, bytes per memory.

Phases, on a private embedded Redis:
1. embed a pool of sentences and the query texts (local embedder);
2. load the small data set, sweeping ingest batch sizes; time hybrid search;
3. grow to the large data set with the best batch size (the sustained ingest rate);
4. measure Redis memory per memory (with history, then hashes + index alone);
5. time hybrid / semantic / keyword search, then profile where the time goes;
6. time `build_prompt` with real query embedding, a ~100-memory user and a 20-message session.
"""

from __future__ import annotations

import argparse
import cProfile
import random
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import engine_diag, engine_report, engine_storage
from bench.corpus import Corpus
from bench.engine_data import (
    EXTRACTOR,
    NOISE_SIGMA,
    MemoryFactory,
    Query,
    build_pool,
    build_queries,
    reassign_users,
    user_ids,
)
from bench.env import Progress, load_average, private_redis, start_result
from bench.redis_stats import (
    delete_keys,
    ft_info,
    memory_usage,
    reset_command_stats,
    settled_used_memory,
    versions,
    wait_for_background_work,
)
from bench.stats import Target, summarise_ms


@dataclass(frozen=True)
class EngineConfig:
    small: int  # memories in the first data set
    large: int  # memories in the second one
    users: int
    pool: int  # distinct sentences embedded for memory vectors
    queries: int  # timed hybrid queries per size
    warmup: int
    mode_queries: int  # timed semantic-only and keyword-only queries at the large size
    top_k: int
    batch_sizes: tuple[int, ...]
    sweep_chunk: int  # memories per (round, batch size) trial
    sweep_rounds: int
    prompt_sessions: int
    session_messages: int
    prompt_calls: int
    prompt_warmup: int
    profile_queries: int
    storage_sample: int  # memory hashes copied for the storage what-ifs
    seed: int


FULL = EngineConfig(
    small=10_000,
    large=100_000,
    users=1_000,
    pool=1_000,
    queries=800,
    warmup=100,
    mode_queries=500,
    top_k=20,
    batch_sizes=(100, 500, 1_000),
    sweep_chunk=1_000,
    sweep_rounds=3,
    prompt_sessions=20,
    session_messages=20,
    prompt_calls=300,
    prompt_warmup=20,
    profile_queries=400,
    storage_sample=5_000,
    seed=20_251_124,
)

# A smoke run: same shape (100 memories per user at the large size), a fraction of the work.
QUICK = EngineConfig(
    small=4_000,
    large=10_000,
    users=100,
    pool=300,
    queries=200,
    warmup=30,
    mode_queries=100,
    top_k=20,
    batch_sizes=(100, 500, 1_000),
    sweep_chunk=1_000,
    sweep_rounds=1,
    # (small is one chunk more than the sweep: that last chunk is the profiled ingest)
    prompt_sessions=5,
    session_messages=20,
    prompt_calls=50,
    prompt_warmup=5,
    profile_queries=80,
    storage_sample=1_000,
    seed=20_251_124,
)


def size_label(count: int) -> str:
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


def targets(large: int) -> list[Target]:
    label = size_label(large)
    return [
        Target(f"search_p95_ms_{label}", f"Hybrid search p95, top-20, {label} memories", 1.5, "ms"),
        Target("build_prompt_p95_ms", "build_prompt p95 (local embedder)", 30.0, "ms"),
        Target("ingest_per_s", "Ingest (precomputed vectors)", 2000.0, "memories/s", at_least=True),
        # 3 KB read as 3 KiB: Redis reports bytes in powers of two.
        Target("bytes_per_memory", "Redis bytes per memory (384 dims, with history)", 3072.0, "bytes"),
    ]


# --- Ingest -------------------------------------------------------------------------------------


@dataclass
class Loader:
    """Adds memories through `add_memories`, timing only that call."""

    factory: MemoryFactory
    progress: Progress
    ids: list[str]

    def load(
        self,
        count: int,
        batch: int,
        *,
        label: str,
        report_every: int = 10,
        profile: cProfile.Profile | None = None,
    ) -> dict[str, Any]:
        from memory.services import add_memories

        seconds = 0.0
        done = 0
        batches = 0
        step = max(1, count // report_every)
        next_report = step
        while done < count:
            items = self.factory.batch(min(batch, count - done))
            started = time.perf_counter()
            if profile:
                profile.enable()
            added = add_memories(items=items, actor=EXTRACTOR)
            if profile:
                profile.disable()
            seconds += time.perf_counter() - started
            self.ids.extend(m.id for m in added)
            done += len(items)
            batches += 1
            if done >= next_report or done == count:
                self.progress(f"{label}: {done}/{count} memories ({done / seconds:,.0f}/s)")
                next_report += step
        return {
            "batch": batch,
            "memories": done,
            "batches": batches,
            "seconds": round(seconds, 3),
            "per_s": round(done / seconds, 1),
        }


def sweep_batch_sizes(loader: Loader, cfg: EngineConfig) -> dict[str, Any]:
    """Interleave the batch sizes over rounds so index growth does not favour one of them."""
    trials = []
    for round_no in range(cfg.sweep_rounds):
        for batch in cfg.batch_sizes:
            trials.append(
                loader.load(
                    cfg.sweep_chunk, batch, label=f"sweep r{round_no + 1} batch {batch}", report_every=1
                )
            )
    by_size = []
    for batch in cfg.batch_sizes:
        mine = [t for t in trials if t["batch"] == batch]
        memories = sum(t["memories"] for t in mine)
        seconds = sum(t["seconds"] for t in mine)
        by_size.append(
            {
                "batch": batch,
                "memories": memories,
                "seconds": round(seconds, 3),
                "per_s": round(memories / seconds, 1),
            }
        )
    best = max(by_size, key=lambda row: row["per_s"])
    return {
        "trials": trials,
        "by_batch_size": by_size,
        "best_batch": best["batch"],
        "best_per_s": best["per_s"],
    }


# --- Search -------------------------------------------------------------------------------------


ROUND_TRIP_QUERIES = 100


def time_search(queries: list[Query], *, mode: str, top_k: int, warmup: int) -> dict[str, Any]:
    """Client-side wall time of `search_memories` (filter built inside the timed call, vector given)."""
    from core.redis_client import get_redis
    from memory.query import MemoryFilter
    from memory.search import search_memories

    def one(query: Query) -> int:
        result = search_memories(
            filter=MemoryFilter.build(user_id=query.user_id),
            text=query.text,
            mode=mode,  # type: ignore[arg-type]
            top_k=top_k,
            # The product embeds only for semantic and hybrid; keyword mode never has a vector.
            query_vector=None if mode == "keyword" else query.vector,
        )
        return len(result.hits) + len(result.near_misses)

    for query in queries[:warmup]:
        one(query)
    client = get_redis()
    reset_command_stats(client)
    samples: list[float] = []
    cpu: list[float] = []
    returned = 0
    switches = ContextSwitches(client)
    for query in queries[warmup:]:
        started, cpu_started = time.perf_counter(), time.thread_time()
        returned += one(query)
        samples.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - cpu_started) * 1000)
    server = engine_diag.server_time_per_item(client, len(samples))
    n = len(samples)
    # Round trips counted apart from the timed queries (the counting wrapper costs a little).
    trips: list[float] = []
    with engine_diag.timed_round_trips(trips):
        for query in queries[warmup : warmup + ROUND_TRIP_QUERIES]:
            one(query)
    return {
        **summarise_ms(samples),
        "round_trips_per_query": round(len(trips) / min(ROUND_TRIP_QUERIES, n), 2),
        "avg_hits_and_near_misses": round(returned / n, 2),
        "server_ft_search_calls_per_query": round(server["calls_per_memory"].get("FT.SEARCH", 0.0), 2),
        "server_ft_search_ms_per_query": round(
            server["by_command_us_per_memory"].get("FT.SEARCH", 0.0) / 1000, 3
        ),
        "server_ms_per_query": round(server["us_per_memory"] / 1000, 3),
        "server_us_by_command_per_query": server["by_command_us_per_memory"],
        # Client CPU time vs wall time: a tail made of waiting (for a core or for Redis) shows here.
        "client_cpu_ms": summarise_ms(cpu),
        "involuntary_context_switches_per_query": switches.per(n),
    }


@dataclass
class ContextSwitches:
    """Times this process and redis-server were preempted (another runnable task took the core)."""

    client: Any
    start: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.redis_pid = int(self.client.info("server")["process_id"])
        self.start = self._now()

    def _now(self) -> tuple[int, int]:
        return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw, _nonvoluntary(self.redis_pid)

    def per(self, n: int) -> dict[str, float]:
        bench, server = (b - a for a, b in zip(self.start, self._now(), strict=True))
        return {"bench_process": round(bench / n, 3), "redis_server": round(server / n, 3)}


def _nonvoluntary(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("nonvoluntary_ctxt_switches:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def search_sizes(
    cfg: EngineConfig,
    queries: list[Query],
    users: list[str],
    size: int,
    progress: Progress,
    modes: tuple[str, ...],
) -> dict[str, Any]:
    from core.redis_client import get_redis

    wait_for_background_work(get_redis())
    out: dict[str, Any] = {}
    for i, mode in enumerate(modes):
        count = cfg.queries if mode == "hybrid" else cfg.mode_queries
        warmup = cfg.warmup if mode == "hybrid" else min(cfg.warmup, 50)
        asked = reassign_users(queries, users, seed=cfg.seed + size + i)[: warmup + count]
        progress(f"search {size_label(size)} {mode}: {warmup} warm-up + {count} timed queries")
        out[mode] = time_search(asked, mode=mode, top_k=cfg.top_k, warmup=warmup)
        row = out[mode]
        progress(
            f"  p50 {row['p50_ms']:.2f} ms  p95 {row['p95_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms "
            f"(server {row['server_ft_search_ms_per_query']:.2f} ms/query)"
        )
    return out


# --- Memory footprint ---------------------------------------------------------------------------


def footprint(
    ids: list[str], users: list[str], baseline: int, cfg: EngineConfig, progress: Progress
) -> dict[str, Any]:
    """Bytes per memory from INFO memory, then split by key kind and index part."""
    from core.redis_client import get_redis
    from memory import keys
    from memory.index import index_name

    client = get_redis()
    wait_for_background_work(client)
    n = len(ids)
    total = settled_used_memory(client) - baseline
    sample = random.Random(cfg.seed).sample(ids, k=min(1000, n))
    progress(f"memory: {total / n:,.0f} bytes/memory over {n} memories; sizing sample keys")
    hash_avg = _mean(memory_usage(client, [keys.memory(i) for i in sample]))
    history_avg = _mean(memory_usage(client, [keys.history(i) for i in sample]))
    stream = memory_usage(client, [keys.mutation_stream()])[0]
    user_sets = sum(memory_usage(client, [keys.user_memory_ids(u) for u in users]))
    users_zset = sum(memory_usage(client, keys.user_shards()))
    info = ft_info(client, index_name())
    index_bytes = _index_bytes(info)

    progress("memory: dropping history lists + mutation stream to measure memories + index alone")
    delete_keys(client, [keys.history(i) for i in ids])
    delete_keys(client, [keys.mutation_stream()])
    without_history = settled_used_memory(client) - baseline
    keyspace = client.info("keyspace").get("db0", {})
    return {
        "memories": n,
        "used_memory_delta_bytes": total,
        "bytes_per_memory": round(total / n, 1),
        "bytes_per_memory_without_history": round(without_history / n, 1),
        "history_bytes_per_memory_measured": round((total - without_history) / n, 1),
        "memory_usage_samples": {
            "memory_hash_avg": round(hash_avg, 1),
            "history_list_avg": round(history_avg, 1),
            "mutation_stream_per_memory": round(stream / n, 1),
            "user_id_sets_per_memory": round(user_sets / n, 1),
            "users_zset_per_memory": round(users_zset / n, 1),
        },
        "index_bytes_per_memory": {name: round(size / n, 1) for name, size in index_bytes.items()},
        "index_bytes_per_memory_total": round(sum(index_bytes.values()) / n, 1),
        "hash_plus_index_bytes_per_memory": round(hash_avg + sum(index_bytes.values()) / n, 1),
        # Not in MEMORY USAGE nor FT.INFO: main-dict entries, expiry entries, unreported index allocations.
        "without_history_bytes_unattributed": round(
            without_history / n - hash_avg - sum(index_bytes.values()) / n - (user_sets + users_zset) / n, 1
        ),
        "ft_info": info,
        "keyspace_after_history_drop": keyspace,
    }


# FT.INFO fields (MB) that are separate allocations of the index; their sum is the index's cost.
INDEX_SIZE_FIELDS = (
    "inverted_sz_mb",
    "vector_index_sz_mb",
    "offset_vectors_sz_mb",
    "doc_table_size_mb",
    "sortable_values_size_mb",
    "key_table_size_mb",
    "tag_overhead_sz_mb",
    "text_overhead_sz_mb",
    "geoshapes_sz_mb",
)


def _index_bytes(info: dict[str, Any]) -> dict[str, float]:
    return {name: float(info[name]) * 1024 * 1024 for name in INDEX_SIZE_FIELDS if name in info}


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else 0.0


# --- build_prompt -------------------------------------------------------------------------------


def prepare_sessions(cfg: EngineConfig, corpus: Corpus, factory: MemoryFactory) -> list[tuple[str, str]]:
    """Users with ~100 memories, each with one session of `session_messages` chat messages."""
    from memory import working

    per_user = cfg.large // cfg.users
    sessions = []
    for i, user in enumerate(factory.users_near(cfg.prompt_sessions, per_user)):
        session_id = f"bench-session-{i:03d}"
        working.ensure_session(session_id=session_id, user_id=user)
        for _ in range(cfg.session_messages // 2):
            working.append_message(session_id=session_id, role="user", content=corpus.question())
            working.append_message(session_id=session_id, role="assistant", content=corpus.reply())
        sessions.append((session_id, user))
    return sessions


def time_build_prompt(
    cfg: EngineConfig,
    corpus: Corpus,
    sessions: list[tuple[str, str]],
    factory: MemoryFactory,
    progress: Progress,
) -> dict[str, Any]:
    from core.embeddings import get_embedder
    from core.redis_client import get_redis
    from memory.prompt import build_prompt

    progress("build_prompt: loading the local embedder")
    get_embedder().embed(["warm up the model"])
    for i in range(cfg.prompt_warmup):
        session_id, user = sessions[i % len(sessions)]
        build_prompt(user_id=user, session_id=session_id, message=corpus.fresh_question())
    embed_ms: list[float] = []
    samples: list[float] = []
    search_ms: list[float] = []
    memories_used = 0
    tokens_total = 0
    progress(f"build_prompt: {cfg.prompt_calls} timed calls over {len(sessions)} sessions")
    client = get_redis()
    reset_command_stats(client)
    with engine_diag.timed_embedder(embed_ms):
        for i in range(cfg.prompt_calls):
            session_id, user = sessions[i % len(sessions)]
            message = corpus.fresh_question()
            started = time.perf_counter()
            built = build_prompt(user_id=user, session_id=session_id, message=message)
            samples.append((time.perf_counter() - started) * 1000)
            search_ms.append(built.trace.search_ms)
            memories_used += len(built.memories)
            tokens_total += built.token_breakdown["total"]
    server = engine_diag.server_time_per_item(client, len(samples))
    non_embed = [total - embed for total, embed in zip(samples, embed_ms, strict=True)]
    counts = [factory.per_user[user] for _, user in sessions]
    out: dict[str, Any] = {
        **summarise_ms(samples),
        "embed_ms": summarise_ms(embed_ms),
        "search_incl_embed_ms": summarise_ms(search_ms),
        "without_embed_ms": summarise_ms(non_embed),
        "avg_memories_in_prompt": round(memories_used / len(samples), 2),
        "avg_prompt_tokens": round(tokens_total / len(samples), 1),
        "user_memory_counts": {"min": min(counts), "max": max(counts)},
        "session_messages": cfg.session_messages,
        "server_per_call": server,
    }
    progress(
        f"  p50 {out['p50_ms']:.1f} ms  p95 {out['p95_ms']:.1f} ms "
        f"(embedding p50 {out['embed_ms']['p50_ms']:.1f} ms)"
    )
    return out


# --- Orchestration ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = QUICK if args.quick else FULL
    progress = Progress("engine")
    result = start_result("engine", quick=bool(args.quick), config=asdict(cfg), progress=progress)
    progress(
        f"{'quick' if args.quick else 'full'} run: {cfg.small:,} then {cfg.large:,} memories, "
        f"{cfg.users:,} users"
    )
    with tempfile.TemporaryDirectory(prefix="engram-bench-") as tmp, private_redis(Path(tmp) / "redis"):
        result.update(_measure(cfg, progress, profile=not args.no_profile))
    result["load_average_end"] = load_average()
    result["duration_s"] = round(progress.elapsed, 1)
    result["progress_log"] = progress.log
    result["targets"] = [t.check(result[t.key]) for t in targets(cfg.large)]
    result["all_pass"] = all(t["pass"] for t in result["targets"])
    for row in result["targets"]:
        progress(
            f"target {row['label']}: {row['value']} ({row['target']}) {'PASS' if row['pass'] else 'FAIL'}"
        )
    return result


def _measure(cfg: EngineConfig, progress: Progress, *, profile: bool) -> dict[str, Any]:
    from core.redis_client import get_redis
    from memory.index import ensure_index

    client = get_redis()
    out: dict[str, Any] = {
        "versions": versions(client),
        "small_label": size_label(cfg.small),
        "large_label": size_label(cfg.large),
    }
    corpus = Corpus(cfg.seed)
    users = user_ids(cfg.users)

    progress(f"embedding a pool of {cfg.pool} distinct sentences for memory vectors")
    pool = build_pool(corpus, cfg.pool, lambda m: progress(f"  pool: {m}"))
    progress(f"embedding {cfg.warmup + cfg.queries} query texts")
    queries, query_per_s = build_queries(
        corpus, users, cfg.warmup + cfg.queries, cfg.seed, lambda m: progress(f"  queries: {m}")
    )
    out["vectors"] = {
        "method": "pool + noise",
        "pool_sentences": cfg.pool,
        "noise_sigma_per_dim": NOISE_SIGMA,
        "embed_sentences_per_s": round(pool.embed_per_s, 1),
        "query_embed_sentences_per_s": round(query_per_s, 1),
        "vocabulary_words": corpus.vocabulary_size(),
    }

    ensure_index()
    baseline = settled_used_memory(client)
    factory = MemoryFactory(corpus, pool, users, seed=cfg.seed)
    loader = Loader(factory, progress, ids=[])

    sweep = sweep_batch_sizes(loader, cfg)
    batch = sweep["best_batch"]
    progress(f"best ingest batch size {batch} ({sweep['best_per_s']:,.0f}/s); filling to {cfg.small:,}")
    fill = cfg.small - len(loader.ids)
    ingest_profile = engine_diag.profile_ingest(loader.load, fill, batch) if fill > 0 else {}
    search: dict[str, Any] = {}
    search[size_label(cfg.small)] = search_sizes(cfg, queries, users, cfg.small, progress, ("hybrid",))

    reset_command_stats(client)
    bulk = loader.load(cfg.large - len(loader.ids), batch, label=f"grow to {size_label(cfg.large)}")
    bulk["server"] = engine_diag.server_time_per_item(client, bulk["memories"])
    out["ingest"] = {**sweep, "used_batch": batch, "bulk": bulk, "profile": ingest_profile}
    out["ingest_per_s"] = bulk["per_s"]

    out["memory"] = footprint(loader.ids, users, baseline, cfg, progress)
    out["bytes_per_memory"] = out["memory"]["bytes_per_memory"]
    out["bytes_per_memory_hash_and_index"] = out["memory"]["hash_plus_index_bytes_per_memory"]

    large = size_label(cfg.large)
    search[large] = search_sizes(cfg, queries, users, cfg.large, progress, ("hybrid", "semantic", "keyword"))
    out["search"] = search
    out.update(engine_report.flatten_search(search))

    if profile:
        progress("profiling hybrid search")
        asked = reassign_users(queries, users, seed=cfg.seed + 7)
        out["search_diagnosis"] = engine_diag.diagnose_search(asked[: cfg.profile_queries], top_k=cfg.top_k)
        progress(f"storage what-ifs on {cfg.storage_sample:,} copied memories + the index without its vector")
        out["storage_what_if"] = engine_storage.run(loader.ids, seed=cfg.seed, sample=cfg.storage_sample)

    sessions = prepare_sessions(cfg, corpus, factory)
    out["build_prompt"] = time_build_prompt(cfg, corpus, sessions, factory, progress)
    out["build_prompt_p50_ms"] = out["build_prompt"]["p50_ms"]
    out["build_prompt_p95_ms"] = out["build_prompt"]["p95_ms"]
    if profile:
        progress("profiling build_prompt")
        out["build_prompt_diagnosis"] = engine_diag.diagnose_prompt(corpus, sessions, calls=40)
    out["aof"] = wait_for_background_work(client)
    return out


def markdown(result: dict[str, Any]) -> str:
    return engine_report.markdown(result)
