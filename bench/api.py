"""API search latency over HTTP beside the engine call, at 100K memories: what the HTTP layer costs.

On a private embedded Redis: the engine bench's data set (bench/engine_data.py: pool sentences +
noise, 100K memories over 1,000 users), an app API key in a throwaway SQLite database, and daphne
in a subprocess as `make run` serves it. Then, one call at a time from this process, the paths
taking turns call by call (so other processes' load falls on each alike), each path with its own
fresh questions (the embedder caches recent texts, in each process); HTTP with a real client
(httpx2, one kept-alive connection):

- engine, vector given: `search_memories` with a precomputed query vector (the engine bench's call);
- engine, embeds its query: `search_memories` with text only (what a request makes the server do);
- HTTP: POST /api/v1/search (Engram's REST API), when the server has it;
- HTTP: POST /v1/long-term-memory/search (the agent-memory-client compatible API).

The HTTP numbers include the key check (one SQLite read, one Redis counter), JSON in and out and
daphne; "HTTP layer" = HTTP p50/p95 minus the engine-with-embedding p50/p95.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.corpus import Corpus
from bench.engine import Loader, size_label
from bench.engine_data import MemoryFactory, build_pool, embed_in_batches, user_ids
from bench.env import Progress, load_average, machine_line, private_redis, start_result
from bench.redis_stats import versions, wait_for_background_work
from bench.stats import summarise_ms

AGENT_ID = "engram"
NAMESPACE = "default"


@dataclass(frozen=True)
class ApiBenchConfig:
    memories: int
    users: int
    pool: int
    queries: int  # timed calls per path
    warmup: int
    top_k: int
    batch: int
    seed: int


FULL = ApiBenchConfig(
    memories=100_000, users=1_000, pool=1_000, queries=400, warmup=40, top_k=20, batch=500, seed=20_251_124
)
QUICK = ApiBenchConfig(
    memories=10_000, users=100, pool=300, queries=80, warmup=15, top_k=20, batch=500, seed=20_251_124
)


@dataclass(frozen=True)
class Ask:
    user_id: str
    text: str


def _asks(corpus: Corpus, users: list[str], count: int, seed: int) -> list[Ask]:
    import random

    rng = random.Random(seed)
    return [Ask(rng.choice(users), corpus.fresh_question()) for _ in range(count)]


Timed = tuple[list[Ask], Callable[[Ask], int]]


def _interleaved(paths: dict[str, Timed], *, warmup: int) -> dict[str, dict[str, Any]]:
    """Time every path call by call in turn (the order rotating), so the load other processes put
    on this shared machine falls on each path alike; each path has its own questions."""
    names = list(paths)
    for i in range(warmup):
        for name in names:
            asks, call = paths[name]
            call(asks[i])
    samples: dict[str, list[float]] = {name: [] for name in names}
    returned = dict.fromkeys(names, 0)
    count = min(len(asks) for asks, _ in paths.values()) - warmup
    for i in range(warmup, warmup + count):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            asks, call = paths[name]
            started = time.perf_counter()
            returned[name] += call(asks[i])
            samples[name].append((time.perf_counter() - started) * 1000)
    return {
        name: {**summarise_ms(samples[name]), "avg_hits": round(returned[name] / max(1, count), 2)}
        for name in names
    }


def _engine_filter(user_id: str) -> Any:
    from memory.query import MemoryFilter

    # What an app key's search runs: its agent and its namespaces (api.callers.ApiCaller.filter).
    return MemoryFilter.build(user_id=user_id, agent_id=AGENT_ID, namespaces=[NAMESPACE])


def engine_calls(cfg: ApiBenchConfig, corpus: Corpus, users: list[str]) -> dict[str, Timed]:
    """The engine call with its query vector given, and as a request makes it (embedding the text)."""
    from memory.search import search_memories

    given = _asks(corpus, users, cfg.warmup + cfg.queries, cfg.seed + 1)
    vectors, _ = embed_in_batches([a.text for a in given])
    by_text = dict(zip([a.text for a in given], vectors, strict=True))

    def with_vector(ask: Ask) -> int:
        result = search_memories(
            filter=_engine_filter(ask.user_id), text=ask.text, top_k=cfg.top_k, query_vector=by_text[ask.text]
        )
        return len(result.hits)

    def embeds(ask: Ask) -> int:
        return len(search_memories(filter=_engine_filter(ask.user_id), text=ask.text, top_k=cfg.top_k).hits)

    return {
        "engine_vector_given": (given, with_vector),
        "engine_with_embedding": (_asks(corpus, users, cfg.warmup + cfg.queries, cfg.seed + 2), embeds),
    }


def http_calls(
    cfg: ApiBenchConfig, corpus: Corpus, users: list[str], client: Any, progress: Progress
) -> tuple[dict[str, Timed], dict[str, Any]]:
    """Each search endpoint the server answers (probed once), the bare round trip and a key check."""
    paths: dict[str, tuple[str, Callable[[Ask], dict[str, Any]], str]] = {
        "http_rest_search": (
            "/api/v1/search",
            lambda a: {"text": a.text, "user_id": a.user_id, "top_k": cfg.top_k},
            "hits",
        ),
        "http_ams_search": (
            "/v1/long-term-memory/search",
            lambda a: {"text": a.text, "limit": cfg.top_k, "user_id": {"eq": a.user_id}},
            "memories",
        ),
    }
    calls: dict[str, Timed] = {}
    skipped: dict[str, Any] = {}
    for n, (name, (path, body, field)) in enumerate(paths.items()):
        probe = client.post(path, json=body(Ask(users[0], "warm up the model")))
        if probe.status_code != 200:
            progress(f"{path}: answered {probe.status_code}, skipped ({probe.text[:200]})")
            skipped[name] = {"skipped": f"{path} answered {probe.status_code}"}
            continue

        def call(ask: Ask, path: str = path, body: Any = body, field: str = field) -> int:
            response = client.post(path, json=body(ask))
            response.raise_for_status()
            return len(response.json()[field])

        calls[name] = (_asks(corpus, users, cfg.warmup + cfg.queries, cfg.seed + 10 + n), call)

    def health_call(ask: Ask) -> int:
        client.get("/v1/health").raise_for_status()
        return 0

    def sessions_call(ask: Ask) -> int:
        client.get("/v1/working-memory/", params={"user_id": ask.user_id}).raise_for_status()
        return 0

    cheap = [Ask(users[i % len(users)], "") for i in range(cfg.warmup + cfg.queries)]
    calls["http_health"] = (cheap, health_call)
    calls["http_key_check"] = (cheap, sessions_call)
    return calls, skipped


def _server(root: Path, redis_url: str, db_path: str) -> Any:
    from bench.chat_load import daphne_server, server_environment

    env = server_environment(
        redis_url=redis_url, db_path=db_path, llm_url="http://127.0.0.1:9/v1", state_dir=root / "state"
    )
    return daphne_server(env, root / "daphne.log")


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = QUICK if args.quick else FULL
    progress = Progress("api")
    result = start_result("api", quick=bool(args.quick), config=asdict(cfg), progress=progress)
    with (
        tempfile.TemporaryDirectory(prefix="engram-bench-api-") as tmp,
        private_redis(Path(tmp) / "redis") as url,
    ):
        result.update(_measure(cfg, Path(tmp), url, progress))
    result["load_average_end"] = load_average()
    result["duration_s"] = round(progress.elapsed, 1)
    result["progress_log"] = progress.log
    return result


def _measure(cfg: ApiBenchConfig, root: Path, redis_url: str, progress: Progress) -> dict[str, Any]:
    import httpx2

    from bench.chat_load import temp_database
    from core.api_keys import create_api_key
    from core.redis_client import get_redis
    from memory.index import ensure_index

    client = get_redis()
    out: dict[str, Any] = {"versions": versions(client), "size_label": size_label(cfg.memories)}
    corpus = Corpus(cfg.seed)
    users = user_ids(cfg.users)
    progress(f"embedding a pool of {cfg.pool} sentences; loading {cfg.memories:,} memories")
    pool = build_pool(corpus, cfg.pool, lambda m: None)
    ensure_index()
    loader = Loader(MemoryFactory(corpus, pool, users, seed=cfg.seed), progress, ids=[])
    out["ingest"] = loader.load(cfg.memories, cfg.batch, label="load", report_every=4)
    wait_for_background_work(client)
    (root / "state").mkdir()
    with temp_database(root / "bench.sqlite3") as db_path:
        _, raw_key = create_api_key(
            name="bench-app",
            role="app",
            agent_id=AGENT_ID,
            namespaces=[NAMESPACE],
            rate_limit_per_minute=600_000,
        )
        progress("starting daphne")
        with (
            _server(root, redis_url, db_path) as server,
            httpx2.Client(base_url=server.url, headers={"X-API-Key": raw_key}, timeout=120.0) as http,
        ):
            http.get("/v1/health").raise_for_status()
            calls, skipped = http_calls(cfg, corpus, users, http, progress)
            calls.update(engine_calls(cfg, corpus, users))
            progress(f"{', '.join(calls)}: {cfg.warmup} warm-up + {cfg.queries} timed calls each, in turn")
            out.update(_interleaved(calls, warmup=cfg.warmup))
            out.update(skipped)
            for name in calls:
                progress(f"  {name}: p50 {out[name]['p50_ms']:.2f} ms  p95 {out[name]['p95_ms']:.2f} ms")
            out["server_errors"] = server.log_errors()
    out["http_layer_ms"] = _layer_costs(out)
    return out


def _layer_costs(out: dict[str, Any]) -> dict[str, dict[str, float]]:
    engine = out["engine_with_embedding"]
    costs = {}
    for name in ("http_rest_search", "http_ams_search"):
        row = out.get(name, {})
        if "p50_ms" in row:
            costs[name] = {pct: round(row[f"{pct}_ms"] - engine[f"{pct}_ms"], 3) for pct in ("p50", "p95")}
    return costs


# --- Report --------------------------------------------------------------------------------------

_LABELS = {
    "engine_vector_given": "Engine `search_memories`, query vector given (the engine bench's call)",
    "engine_with_embedding": "Engine `search_memories`, embeds its query (what a request costs the server)",
    "http_rest_search": "HTTP POST /api/v1/search (Engram REST API, app key)",
    "http_ams_search": "HTTP POST /v1/long-term-memory/search (agent-memory-client API, app key)",
    "http_health": "HTTP GET /v1/health (no key, no engine: the bare round trip)",
    "http_key_check": "HTTP GET /v1/working-memory/ (the key checked, one small Redis read)",
}


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        "## API search over HTTP",
        "",
        machine_line(result),
        "",
        f"{cfg['memories']:,} memories over {cfg['users']:,} users (~{cfg['memories'] // cfg['users']}/user, "
        f"the engine bench's data set), hybrid search, top-{cfg['top_k']}, one request at a time "
        "(httpx2, one kept-alive connection) against daphne in a subprocess, the paths taking turns "
        f"call by call; each path asks its own {cfg['queries']} fresh questions after "
        f"{cfg['warmup']} warm-up calls.",
        "",
        "| Path | p50 | p95 | p99 | avg hits |",
        "|---|---|---|---|---|",
    ]
    for name, label in _LABELS.items():
        row = result.get(name, {})
        if "p50_ms" not in row:
            lines.append(f"| {label} | {row.get('skipped', 'not run')} | | | |")
            continue
        hits = "-" if name in {"http_health", "http_key_check"} else row.get("avg_hits", "")
        lines.append(
            f"| {label} | {row['p50_ms']:.2f} ms | {row['p95_ms']:.2f} ms | {row['p99_ms']:.2f} ms | {hits} |"
        )
    lines.append("")
    for name, cost in result.get("http_layer_ms", {}).items():
        path = _LABELS[name].split(" (")[0].removeprefix("HTTP ")
        lines.append(
            f"- HTTP layer of {path}: +{cost['p50']:.2f} ms at p50, +{cost['p95']:.2f} ms at p95 over "
            "the engine call that embeds its query."
        )
    errors = result.get("server_errors", [])
    lines.append(f"- Server log errors during the run: {len(errors)}.")
    return "\n".join(lines) + "\n"
