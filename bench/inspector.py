"""Inspector bench: server time of the user page and its search for a user with 10,000 memories.

On a private embedded Redis, one user gets 10,000 memories (`add_memories` with precomputed vectors:
a small pool of sentences is embedded once with the product's embedder and each memory takes a pool
vector plus a little Gaussian noise, renormalised; its text is the pool sentence with a varied
detail, so text and vector stay about the same thing). Then Django's test `Client`, in process and
logged in as a superuser, times `client.get` for:

- the user page, page 1 (50 rows, newest first) and a deep page (rows 7,451-7,500);
- a hybrid search from the user page (query embedding included: that is server work too).

"Server time" is the wall time around `client.get`: URL routing, middleware, the view, Redis and
template rendering, without a network hop. Run it with `python -m bench --only inspector` (once
registered in bench/__main__.py) or `python -m bench.inspector [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

from bench.env import RESULTS_DIR, Progress, load_average, machine_info, prepare_environment, private_redis
from bench.stats import Target, summarise_ms

USER_ID = "bench-inspector-user"
NOISE_SIGMA = 0.025  # per dimension; keeps cosine(memory, its pool sentence) near 0.9 at 384 dims
MAX_AGE_DAYS = 180
DAY = 86400.0
TARGET_MS = 300.0


@dataclass(frozen=True)
class InspectorConfig:
    memories: int
    pool: int  # distinct sentences embedded for the memory vectors
    requests: int  # timed requests per scenario
    warmup: int
    deep_page: int
    sessions: int
    session_messages: int
    deleted: int
    seed: int


FULL = InspectorConfig(
    memories=10_000,
    pool=300,
    requests=100,
    warmup=10,
    deep_page=150,
    sessions=5,
    session_messages=20,
    deleted=20,
    seed=20_251_124,
)
QUICK = InspectorConfig(
    memories=10_000,
    pool=120,
    requests=50,
    warmup=5,
    deep_page=150,
    sessions=2,
    session_messages=10,
    deleted=5,
    seed=20_251_124,
)


# --- Data -----------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


CITIES = _words("Lisbon Porto Madrid Berlin Vienna Prague Oslo Dublin Leeds Milan Athens Kyoto Lima Austin")
FOODS = _words("peanuts shrimp sushi ramen tacos falafel paella curry kimchi tofu lentils olives mango kale")
HOBBIES = _words("hiking climbing cycling swimming sailing pottery knitting chess baking yoga tango")
JOBS = _words("nurse teacher architect plumber lawyer chef pilot designer developer librarian translator")
PETS = _words("dog cat rabbit parrot tortoise hamster gecko")
NAMES = _words("Anna Ben Chloe Dmitri Elena Farid Grace Hiro Ines Jonas Kira Luca Maya Omar Priya Rosa")
RELATIONS = _words("sister brother mother father cousin partner colleague neighbour")
DETAILS = ["", "", " (said twice)", " since last year", " for a long time", " these days", " again"]

TEMPLATES: list[tuple[str, str, tuple[str, ...]]] = [
    ("semantic", "User lives in {city}", ("home",)),
    ("semantic", "User is allergic to {food}", ("health", "food")),
    ("semantic", "User loves eating {food}", ("food",)),
    ("semantic", "User works as a {job} in {city}", ("work",)),
    ("semantic", "User has a {pet} named {name}", ("pets",)),
    ("semantic", "User's {relation} {name} lives in {city}", ("family",)),
    ("semantic", "User enjoys {hobby} on weekends", ("hobbies",)),
    ("episodic", "User went {hobby} near {city} with {name}", ("travel", "hobbies")),
    ("episodic", "User tried {food} for the first time in {city}", ("food", "travel")),
    ("episodic", "User's {relation} {name} visited from {city}", ("family",)),
    ("procedural", "Answer {name}'s questions about {hobby} with short lists", ("style",)),
    ("procedural", "Suggest recipes without {food}", ("food", "style")),
]

QUESTIONS = [
    "Where does the user live?",
    "What is the user allergic to?",
    "What food does the user like?",
    "What does the user do for work?",
    "Does the user have a pet?",
    "Who in the user's family lives in {city}?",
    "What does the user do on weekends?",
    "Has the user been to {city}?",
    "Does the user like {food}?",
    "Did the user go {hobby} recently?",
    "How should answers about {hobby} be formatted?",
    "What is the name of the user's {pet}?",
]


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        city=rng.choice(CITIES),
        food=rng.choice(FOODS),
        hobby=rng.choice(HOBBIES),
        job=rng.choice(JOBS),
        pet=rng.choice(PETS),
        name=rng.choice(NAMES),
        relation=rng.choice(RELATIONS),
    )


@dataclass
class Pool:
    sentences: list[tuple[str, str, tuple[str, ...]]]  # (type, text, topics)
    vectors: np.ndarray
    embed_seconds: float


def build_pool(cfg: InspectorConfig, rng: random.Random) -> Pool:
    from core.embeddings import get_embedder

    seen: set[str] = set()
    sentences: list[tuple[str, str, tuple[str, ...]]] = []
    while len(sentences) < cfg.pool:
        memory_type, template, topics = rng.choice(TEMPLATES)
        text = _fill(template, rng)
        if text not in seen:
            seen.add(text)
            sentences.append((memory_type, text, topics))
    started = time.perf_counter()
    vectors = get_embedder().embed([text for _, text, _ in sentences])
    return Pool(sentences, np.asarray(vectors, dtype=np.float32), time.perf_counter() - started)


def load_memories(cfg: InspectorConfig, pool: Pool, rng: random.Random, progress: Progress) -> dict[str, Any]:
    from memory.services import NewMemory, add_memories
    from memory.types import Actor, ActorKind, Scope

    actor = Actor(ActorKind.EXTRACTOR, "bench-worker", model="bench-model", prompt_version="v1")
    np_rng = np.random.default_rng(cfg.seed)
    now = time.time()
    batch = 500
    done = 0
    seconds = 0.0
    while done < cfg.memories:
        size = min(batch, cfg.memories - done)
        rows = [rng.randrange(len(pool.sentences)) for _ in range(size)]
        noisy = pool.vectors[rows] + np_rng.normal(0.0, NOISE_SIGMA, size=(size, pool.vectors.shape[1]))
        noisy = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
        items = []
        for row, vector in zip(rows, noisy, strict=True):
            memory_type, text, topics = pool.sentences[row]
            items.append(
                NewMemory(
                    text=text + rng.choice(DETAILS),
                    scope=Scope(user_id=USER_ID),
                    type=memory_type,
                    topics=list(topics),
                    created_at=now - rng.uniform(0, MAX_AGE_DAYS) * DAY,
                    pinned=rng.random() < 0.01,
                    embedding=vector,
                )
            )
        started = time.perf_counter()
        add_memories(items=items, actor=actor)
        seconds += time.perf_counter() - started
        done += size
        if done % 2500 == 0 or done == cfg.memories:
            progress(f"loaded {done:,}/{cfg.memories:,} memories ({done / seconds:,.0f}/s)")
    return {"memories": done, "seconds": round(seconds, 2), "per_s": round(done / seconds, 1)}


def add_context(cfg: InspectorConfig, rng: random.Random) -> None:
    """What a real user page also reads: sessions with messages, and recently deleted memories."""
    from memory import working
    from memory.access import Owner
    from memory.query import MemoryFilter
    from memory.selectors import list_memories
    from memory.services import delete_memory
    from memory.types import Actor, ActorKind

    for i in range(cfg.sessions):
        session_id = f"bench-session-{i}"
        working.ensure_session(session_id=session_id, user_id=USER_ID, title=f"Chat {i}")
        for j in range(cfg.session_messages):
            role = "user" if j % 2 == 0 else "assistant"
            working.append_message(
                session_id=session_id, role=role, content=_fill(rng.choice(QUESTIONS), rng)
            )
    page = list_memories(filter=MemoryFilter.build(user_id=USER_ID), limit=cfg.deleted, offset=500)
    for memory in page.memories:
        delete_memory(
            memory_id=memory.id,
            owner=Owner.user(USER_ID),
            actor=Actor(ActorKind.USER, USER_ID),
            reason="bench",
        )


# --- Timing ---------------------------------------------------------------------------------------


def time_requests(
    client: Any, paths: list[str], *, warmup: int, check: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Wall time around `client.get` for each path after `warmup` untimed ones; every answer is checked."""
    samples: list[float] = []
    sizes: list[int] = []
    for i, path in enumerate(paths):
        started = time.perf_counter()
        response = client.get(path, headers=headers or {})
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200 or check.encode() not in response.content:
            raise RuntimeError(f"GET {path} answered {response.status_code} without {check!r}")
        if i >= warmup:
            samples.append(elapsed)
            sizes.append(len(response.content))
    return {**summarise_ms(samples), "avg_response_bytes": round(sum(sizes) / len(sizes))}


def targets() -> list[Target]:
    return [
        Target("user_page_p95_ms", "User page, page 1 (10k memories), p95", TARGET_MS, "ms"),
        Target("deep_page_p95_ms", "User page, deep page (10k memories), p95", TARGET_MS, "ms"),
        Target("hybrid_search_p95_ms", "Hybrid search on the user page (10k memories), p95", TARGET_MS, "ms"),
    ]


def _measure(cfg: InspectorConfig, progress: Progress) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from bench.redis_stats import versions, wait_for_background_work
    from core.embeddings import get_embedder
    from core.redis_client import get_redis
    from memory.index import ensure_index

    rng = random.Random(cfg.seed)
    call_command("migrate", verbosity=0, interactive=False)
    model = get_user_model()
    staff = model.objects.filter(username="bench-inspector").first() or model.objects.create_superuser(
        "bench-inspector", password=None
    )
    # An explicit host: outside the test runner Django does not add "testserver" to ALLOWED_HOSTS.
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)

    ensure_index()
    progress(f"embedding a pool of {cfg.pool} sentences")
    pool = build_pool(cfg, rng)
    progress(f"loading {cfg.memories:,} memories for one user")
    ingest = load_memories(cfg, pool, rng, progress)
    add_context(cfg, rng)
    wait_for_background_work(get_redis())
    get_embedder().embed(["warm the model up"])

    base = reverse("inspector:user", kwargs={"user_id": USER_ID})
    n = cfg.warmup + cfg.requests
    pages = {
        "user_page": [base] * n,
        "deep_page": [f"{base}?page={cfg.deep_page}"] * n,
    }
    questions = [_fill(rng.choice(QUESTIONS), rng) for _ in range(n)]
    searches = [f"{base}?{urlencode({'q': q, 'mode': 'hybrid'})}" for q in questions]
    out: dict[str, Any] = {"versions": versions(get_redis()), "ingest": ingest}
    scenarios = [
        ("user_page", pages["user_page"], "1\u201350 of", None),
        ("deep_page", pages["deep_page"], f"page {cfg.deep_page} of", None),
        ("hybrid_search", searches, "hybrid search", None),
        # For information: the fragments htmx swaps in when paging or searching.
        ("user_page_fragment", pages["user_page"], "1\u201350 of", {"HX-Request": "true"}),
        ("hybrid_search_fragment", searches, "hybrid search", {"HX-Request": "true"}),
    ]
    timings: dict[str, Any] = {}
    for name, paths, check, headers in scenarios:
        progress(f"{name}: {cfg.warmup} warm-up + {cfg.requests} timed requests")
        timings[name] = time_requests(client, paths, warmup=cfg.warmup, check=check, headers=headers)
        row = timings[name]
        progress(f"  p50 {row['p50_ms']:.1f} ms  p95 {row['p95_ms']:.1f} ms  max {row['max_ms']:.1f} ms")
    out["timings"] = timings
    for name in ("user_page", "deep_page", "hybrid_search"):
        out[f"{name}_p50_ms"] = timings[name]["p50_ms"]
        out[f"{name}_p95_ms"] = timings[name]["p95_ms"]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings

    quick = bool(getattr(args, "quick", False))
    cfg = QUICK if quick else FULL
    progress = Progress("inspector")
    result: dict[str, Any] = {
        "bench": "inspector",
        "quick": quick,
        "config": asdict(cfg),
        "machine": machine_info(),
        "debug": bool(settings.DEBUG),
        "load_average_start": load_average(),
    }
    with (
        tempfile.TemporaryDirectory(prefix="engram-bench-inspector-") as tmp,
        private_redis(Path(tmp) / "redis"),
    ):
        result.update(_measure(cfg, progress))
    result["load_average_end"] = load_average()
    result["duration_s"] = round(progress.elapsed, 1)
    result["targets"] = [t.check(result[t.key]) for t in targets()]
    result["all_pass"] = all(t["pass"] for t in result["targets"])
    for row in result["targets"]:
        progress(
            f"target {row['label']}: {row['value']} ms ({row['target']}) {'PASS' if row['pass'] else 'FAIL'}"
        )
    return result


# --- Report ---------------------------------------------------------------------------------------

LABELS = {
    "user_page": "User page, page 1",
    "deep_page": "User page, deep page",
    "hybrid_search": "Hybrid search (incl. query embedding)",
    "user_page_fragment": "User page, page 1, htmx fragment",
    "hybrid_search_fragment": "Hybrid search, htmx fragment",
}


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    cfg = result["config"]
    checks = {t["metric"].removesuffix("_p95_ms"): t for t in result["targets"]}
    dirty = " (dirty tree)" if machine["git_dirty"] else ""
    lines = [
        "## Inspector",
        "",
        f"{machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM · Python "
        f"{machine['python']} · Redis {result['versions'].get('redis', '?')} · {machine['date']} · commit "
        f"{machine['git_commit']}{dirty} · DEBUG={'on' if result['debug'] else 'off'} · load average "
        f"{result['load_average_start']} at start, {result['load_average_end']} at end"
        + (" · **quick run**" if result["quick"] else ""),
        "",
        f"One user with {cfg['memories']:,} memories (+ {cfg['sessions']} sessions, {cfg['deleted']} "
        f"recently deleted), 50 rows per page, deep page = page {cfg['deep_page']}. Server time = wall "
        f"time around Django's test `Client.get` in process ({cfg['requests']} timed requests per row after "
        f"{cfg['warmup']} warm-up).",
        "",
        "| Request | p50 | p95 | p99 | max | Target (p95) | |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in result["timings"].items():
        check = checks.get(name)
        target = check["target"] if check else ""
        verdict = ("✅ pass" if check["pass"] else "❌ fail") if check else ""
        lines.append(
            f"| {LABELS.get(name, name)} | {row['p50_ms']:.1f} ms | {row['p95_ms']:.1f} ms | "
            f"{row['p99_ms']:.1f} ms | {row['max_ms']:.1f} ms | {target} | {verdict} |"
        )
    lines += [
        "",
        f"Loading the data: {result['ingest']['memories']:,} memories in {result['ingest']['seconds']} s "
        f"({result['ingest']['per_s']:,.0f}/s, precomputed vectors).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inspector", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="50 requests per row (the minimum) instead of 100"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="engram-bench-state-") as state:
        prepare_environment(Path(state))
        result = run(args)
    stem = "inspector-quick" if args.quick else "inspector"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.results_dir / f"{stem}.md").write_text(markdown(result))
    print(f"wrote {args.results_dir / stem}.json and .md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
