"""Extraction bench: worker throughput (turns/s, jobs/s) and the lag from a turn to a searchable memory.

On a private embedded Redis, with the scripted OpenAI-compatible server (devtools/llm_server.py) on
loopback as the model and the local embedder as in production:
1. probe the scripted server's own round trip through the product's client (to subtract it);
2. throughput: queue N turns over M sessions, then time in-process worker threads until every
   turn is committed. All turns of a session are queued before the worker starts, so they are
   extracted as ONE job (the product batches a burst); a "spread" run queues one turn per session
   to show the one-turn-per-job rate. Variants: distinct facts (no decision call), ~30%
   contradictions (the decision call path), 2 worker threads, the offline rules extractor;
3. lag: with a worker thread running, send one turn at a time and poll every few ms until its
   fact is findable by `find_exact_duplicates`; with debounce 0, then with the configured default.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from ulid import ULID

from bench.engine_diag import timed_embedder
from bench.env import Progress, load_average, private_redis, start_result
from bench.extraction_report import markdown as render_markdown
from bench.extraction_script import (
    PING_PROMPT,
    FactMaker,
    PlannedTurn,
    ScriptedModel,
    Workload,
    llm_workload,
    rules_workload,
)
from bench.redis_stats import versions
from bench.stats import summarise_ms
from devtools.llm_server import LLMServer


@dataclass(frozen=True)
class ExtractionConfig:
    turns: int  # per throughput run
    sessions: int  # per throughput run: turns / sessions turns arrive together per session
    contradict_share: float
    spread_turns: int  # one turn per session: one job per turn
    lag_turns: int
    lag_sessions: int
    debounce_turns: int  # with the default debounce, ~debounce seconds each
    probe_calls: int
    poll_seconds: float
    run_timeout: float
    seed: int


FULL = ExtractionConfig(
    turns=400,
    sessions=40,
    contradict_share=0.3,
    spread_turns=200,
    lag_turns=60,
    lag_sessions=6,
    debounce_turns=8,
    probe_calls=100,
    poll_seconds=0.005,
    run_timeout=180.0,
    seed=20_251_124,
)
QUICK = ExtractionConfig(
    turns=80,
    sessions=8,
    contradict_share=0.3,
    spread_turns=40,
    lag_turns=15,
    lag_sessions=3,
    debounce_turns=2,
    probe_calls=30,
    poll_seconds=0.005,
    run_timeout=120.0,
    seed=20_251_124,
)

# Settings this bench changes while it runs (restored afterwards).
_OVERRIDDEN = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LLM_MAX_RETRIES", "EXTRACTION_DEBOUNCE_SECONDS")


# --- Settings and instrumentation -----------------------------------------------------------------


@contextmanager
def model_settings(base_url: str) -> Iterator[float]:
    """Point the product at the scripted server; yields the configured debounce (before zeroing it)."""
    from django.conf import settings

    saved = {name: getattr(settings, name) for name in _OVERRIDDEN}
    settings.OPENAI_BASE_URL = base_url
    settings.OPENAI_API_KEY = "bench-key"
    # A retry would hide a failed call inside a slow one; the bench wants to see failures.
    settings.LLM_MAX_RETRIES = 0
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0.0
    try:
        yield float(saved["EXTRACTION_DEBOUNCE_SECONDS"])
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)


@contextmanager
def offline_model() -> Iterator[None]:
    """No endpoint and no key: `extraction_llm()` is None and the rules extractor runs."""
    from django.conf import settings

    saved = settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = "", ""
    try:
        yield
    finally:
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = saved


@contextmanager
def real_server_sockets() -> Iterator[None]:
    """TCP_NODELAY on the scripted server's sockets, as real model servers do.

    With Nagle on, the handler's body write waits for the ACK of its header write, which the
    client delays: ~40 ms per call measured here, twenty times the rest of the round trip.
    """
    from devtools import llm_server

    saved = llm_server._Handler.disable_nagle_algorithm
    llm_server._Handler.disable_nagle_algorithm = True
    try:
        yield
    finally:
        llm_server._Handler.disable_nagle_algorithm = saved


@contextmanager
def quiet_logs(*names: str) -> Iterator[None]:
    """One INFO line per job and per HTTP call would bury the progress lines (and cost time)."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, saved, strict=True):
            logger.setLevel(level)


@contextmanager
def timed_model_calls(samples: list[float]) -> Iterator[None]:
    """Record the wall time (ms) of every blocking model call, from any thread, while active."""
    from core.llm import OpenAICompatibleLLM

    original = OpenAICompatibleLLM.complete

    def complete(self: OpenAICompatibleLLM, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            samples.append((time.perf_counter() - started) * 1000)

    OpenAICompatibleLLM.complete = complete  # type: ignore[method-assign]
    try:
        yield
    finally:
        OpenAICompatibleLLM.complete = original  # type: ignore[method-assign]


@contextmanager
def worker_threads(count: int, name: str) -> Iterator[list[threading.Thread]]:
    """`count` product workers (`Worker.run`) in threads of this process; always stopped."""
    from memory.worker import Worker

    workers = [Worker(worker_id=f"{name}-w{i}") for i in range(count)]
    threads = [
        threading.Thread(target=w.run, name=f"{name}-w{i}", daemon=True) for i, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        yield threads
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(timeout=10)  # a worker notices the stop after its blocking read (<= 0.5 s)


def wait_until(
    condition: Callable[[], bool], *, timeout: float, poll: float, threads: list[threading.Thread], what: str
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if not all(t.is_alive() for t in threads):
            raise RuntimeError(f"a worker thread died while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(poll)


# --- Queue helpers -------------------------------------------------------------------------------


def prepare_sessions(workload: Workload) -> None:
    from memory import working

    for turn in {t.session_id: t for t in workload.turns}.values():
        working.ensure_session(session_id=turn.session_id, user_id=turn.user_id)


def seed_memories(workload: Workload) -> None:
    """The memories that contradictions will replace, stored as an earlier extraction would have."""
    from bench.engine_data import EXTRACTOR
    from memory.services import NewMemory, add_memories
    from memory.types import Scope

    items = [
        NewMemory(text=f.text, scope=Scope(user_id=user), type=f.type, topics=list(f.topics))
        for user, f in workload.seeds
    ]
    for start in range(0, len(items), 200):
        add_memories(items=items[start : start + 200], actor=EXTRACTOR)


def enqueue(turn: PlannedTurn) -> float:
    """Save the turn to working memory and queue it, as the chat does; returns perf_counter at enqueue."""
    from memory import working
    from memory.extraction.queue import enqueue_turn
    from memory.extraction.types import TurnMessage

    at = time.time()
    turn_id = str(ULID())
    working.append_message(session_id=turn.session_id, role="user", content=turn.text, at=at)
    working.append_message(session_id=turn.session_id, role="assistant", content="Noted.", at=at)
    started = time.perf_counter()
    enqueue_turn(
        user_id=turn.user_id,
        session_id=turn.session_id,
        turn_id=turn_id,
        messages=[
            TurnMessage("user", turn.text, at, turn_id),
            TurnMessage("assistant", "Noted.", at, turn_id),
        ],
    )
    return started


def committed_turns(sessions: list[str]) -> int:
    """Turns applied so far: each session's cursor is the sequence number of its last applied turn."""
    from core.redis_client import get_redis
    from memory import keys

    values = get_redis().mget([keys.extraction(s, "cursor") for s in sessions])
    return sum(int(v) for v in values if v)


def queue_idle() -> bool:
    """Every entry read and acknowledged (a cheaper check than `queue_health()` for tight polling)."""
    from core.redis_client import get_redis
    from memory import keys
    from memory.extraction.queue import GROUP

    groups = get_redis().xinfo_groups(keys.turn_stream())
    group = next(g for g in groups if g["name"] == GROUP.encode())
    return int(group["pending"]) == 0 and int(group.get("lag") or 0) == 0


def counters() -> Counter[str]:
    from core.redis_client import get_redis
    from memory import keys

    raw = get_redis().hgetall(keys.extraction_stats())
    return Counter({k.decode(): int(v) for k, v in raw.items()})


def verify(workload: Workload) -> dict[str, int]:
    """Every expected memory findable, every contradicted one gone."""
    from memory.query import MemoryFilter
    from memory.selectors import find_exact_duplicates

    missing = stale = expected = 0
    for user, texts in workload.expected.items():
        filter_ = MemoryFilter.build(user_id=user)
        expected += len(texts)
        missing += sum(1 for text in texts if not find_exact_duplicates(filter=filter_, text=text))
        stale += sum(
            1 for text in workload.replaced.get(user, ()) if find_exact_duplicates(filter=filter_, text=text)
        )
    return {"expected": expected, "missing": missing, "replaced_still_present": stale}


# --- Phases --------------------------------------------------------------------------------------


def probe_model(calls: int) -> dict[str, Any]:
    """The scripted server's round trip through the product's client, with nothing else running."""
    from django.conf import settings

    from core.llm import get_llm

    llm = get_llm()
    messages = [{"role": "system", "content": PING_PROMPT}, {"role": "user", "content": "ping"}]
    for _ in range(5):
        llm.complete(messages, json_mode=True, model=settings.EXTRACTION_MODEL)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        llm.complete(messages, json_mode=True, model=settings.EXTRACTION_MODEL)
        samples.append((time.perf_counter() - started) * 1000)
    return summarise_ms(samples)


@dataclass(frozen=True)
class RunSpec:
    name: str
    label: str
    workers: int
    variant: str  # distinct | contradict | rules
    shape: str  # burst (a session's turns arrive together) | spread (one turn per session)


def throughput(
    spec: RunSpec, workload: Workload, model: ScriptedModel, cfg: ExtractionConfig, progress: Progress
) -> dict[str, Any]:
    """Queue every turn first (untimed), then time worker threads until every turn is committed."""
    sessions = workload.sessions
    seed_memories(workload)
    model.register(workload)
    prepare_sessions(workload)
    enqueue_ms = []
    for turn in workload.turns:
        started = enqueue(turn)
        enqueue_ms.append((time.perf_counter() - started) * 1000)
    before, calls_before = counters(), model.snapshot()
    llm_ms: list[float] = []
    embed_ms: list[float] = []
    progress(f"{spec.label}: {len(workload.turns)} turns over {len(sessions)} sessions queued; draining")
    with timed_model_calls(llm_ms), timed_embedder(embed_ms):
        started = time.perf_counter()
        with worker_threads(spec.workers, spec.name) as threads:
            wait_until(
                lambda: committed_turns(sessions) >= len(workload.turns),
                timeout=cfg.run_timeout,
                poll=0.01,
                threads=threads,
                what=f"{spec.name}: every turn committed",
            )
            seconds = time.perf_counter() - started
            # Let the other worker acknowledge entries of sessions it lost to the first one, so the
            # next run starts from an empty group; not part of the timed drain.
            wait_until(queue_idle, timeout=30, poll=0.05, threads=threads, what=f"{spec.name}: queue idle")
    delta = counters() - before
    calls = model.snapshot() - calls_before
    row = _throughput_row(spec, workload, seconds, delta, calls, llm_ms, embed_ms)
    row["enqueue_ms"] = summarise_ms(enqueue_ms)
    row["check"] = verify(workload) if workload.expected else {}
    progress(
        f"  {row['turns_per_s']:.1f} turns/s, {row['jobs_per_s']:.2f} jobs/s ({row['jobs']} jobs, "
        f"{row['llm_calls']} model calls, {calls.get('decision_calls', 0)} decision calls) in {seconds:.1f}s"
    )
    return row


def _throughput_row(
    spec: RunSpec,
    workload: Workload,
    seconds: float,
    delta: Counter[str],
    calls: Counter[str],
    llm_ms: list[float],
    embed_ms: list[float],
) -> dict[str, Any]:
    turns = len(workload.turns)
    jobs = delta.get("jobs_done", 0)
    return {
        **asdict(spec),
        "turns": turns,
        "sessions": len(workload.sessions),
        "contradicting_turns": workload.contradictions,
        "seconds": round(seconds, 3),
        "turns_per_s": round(turns / seconds, 2),
        "jobs": jobs,
        "jobs_per_s": round(jobs / seconds, 3),
        "turns_per_job": round(turns / jobs, 2) if jobs else 0.0,
        "llm_calls": delta.get("llm_calls", 0),
        "scripted_calls": dict(calls),
        "outcomes": {k.removeprefix("outcome_"): v for k, v in delta.items() if k.startswith("outcome_")},
        "jobs_failed": delta.get("jobs_failed", 0),
        "dead_letters": delta.get("dead_letters", 0),
        "llm_call_ms": summarise_ms(llm_ms),
        # Summed over all worker threads: with 2 workers these overlap in wall time.
        "per_turn_ms": {
            "wall": round(seconds * 1000 / turns, 2),
            "model_calls": round(sum(llm_ms) / turns, 2),
            "embedding": round(sum(embed_ms) / turns, 2),
            "embed_calls_per_turn": round(len(embed_ms) / turns, 2),
        },
    }


def lag(
    workload: Workload, model: ScriptedModel, cfg: ExtractionConfig, *, debounce: float, progress: Progress
) -> dict[str, Any]:
    """Enqueue one turn at a time; time until its fact is findable (polled every `poll_seconds`)."""
    from django.conf import settings

    from memory.query import MemoryFilter
    from memory.selectors import find_exact_duplicates

    model.register(workload)
    prepare_sessions(workload)
    settings.EXTRACTION_DEBOUNCE_SECONDS = debounce
    lags: list[float] = []
    without_model: list[float] = []
    polls = 0
    llm_ms: list[float] = []
    name = f"lag-{debounce:g}s"
    with timed_model_calls(llm_ms), worker_threads(1, name) as threads:
        time.sleep(0.3)  # the worker is in its blocking read when the first turn arrives
        for n, turn in enumerate(workload.turns):
            assert turn.fact is not None
            filter_ = MemoryFilter.build(user_id=turn.user_id)
            calls_before = len(llm_ms)
            started = enqueue(turn)
            deadline = time.monotonic() + debounce + 30
            while not find_exact_duplicates(filter=filter_, text=turn.fact.text):
                polls += 1
                if time.monotonic() > deadline or not threads[0].is_alive():
                    raise TimeoutError(f"{name}: turn {n} never became searchable")
                time.sleep(cfg.poll_seconds)
            elapsed = (time.perf_counter() - started) * 1000
            lags.append(elapsed)
            without_model.append(elapsed - sum(llm_ms[calls_before:]))
            time.sleep(0.02)  # let the worker finish the job (compaction check, lock release)
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0.0
    out: dict[str, Any] = {
        "debounce_s": debounce,
        "turns": len(workload.turns),
        "sessions": len(workload.sessions),
        "lag_ms": summarise_ms(lags),
        "lag_minus_model_calls_ms": summarise_ms(without_model),
        "llm_call_ms": summarise_ms(llm_ms),
        "polls_per_turn": round(polls / len(workload.turns), 1),
    }
    progress(
        f"  lag with debounce {debounce:g}s: p50 {out['lag_ms']['p50_ms']:.1f} ms, "
        f"p95 {out['lag_ms']['p95_ms']:.1f} ms over {len(lags)} turns"
    )
    return out


# --- Orchestration -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = QUICK if args.quick else FULL
    progress = Progress("extraction")
    result = start_result("extraction", quick=bool(args.quick), config=asdict(cfg), progress=progress)
    model = ScriptedModel()
    with (
        quiet_logs("memory.worker", "httpx2", "httpx"),
        real_server_sockets(),
        TemporaryDirectory(prefix="engram-bench-") as tmp,
        private_redis(Path(tmp) / "redis"),
        LLMServer(default_reply=model) as server,
        model_settings(server.base_url) as default_debounce,
    ):
        result.update(_measure(cfg, model, default_debounce, progress))
        result["scripted_server_errors"] = list(server.errors)
    result["load_average_end"] = load_average()
    result["duration_s"] = round(progress.elapsed, 1)
    result["progress_log"] = progress.log
    # The issue sets no target for extraction: report numbers; fail only if the pipeline failed.
    result["targets"] = []
    result["all_pass"] = result["pipeline_ok"]
    return result


def _measure(
    cfg: ExtractionConfig, model: ScriptedModel, default_debounce: float, progress: Progress
) -> dict[str, Any]:
    from django.conf import settings

    from core.embeddings import get_embedder
    from core.redis_client import get_redis
    from memory.extraction.queue import ensure_group
    from memory.index import ensure_index

    out: dict[str, Any] = {"versions": versions(get_redis())}
    progress("loading the local embedder and choosing far-apart fact templates")
    get_embedder().embed(["warm up the model"])
    ensure_index()
    ensure_group()
    maker = FactMaker(cfg.seed)
    out["embedding"] = {"provider": settings.EMBEDDING_PROVIDER, "model": settings.EMBEDDING_MODEL}

    progress(f"scripted server round trip: {cfg.probe_calls} calls")
    probe = out["scripted_server_ms"] = probe_model(cfg.probe_calls)
    progress(f"  p50 {probe['p50_ms']:.2f} ms, p95 {probe['p95_ms']:.2f} ms")

    runs: list[dict[str, Any]] = []
    for workers in (1, 2):
        for variant, share in (("distinct", 0.0), ("contradict", cfg.contradict_share)):
            label = f"{variant}, {workers} worker{'s' if workers > 1 else ''}"
            spec = RunSpec(f"{variant}-{workers}w", label, workers, variant, "burst")
            load = llm_workload(
                maker, run=spec.name, turns=cfg.turns, sessions=cfg.sessions, contradict_share=share
            )
            runs.append(throughput(spec, load, model, cfg, progress))
    spec = RunSpec("spread-1w", "distinct, one turn per session, 1 worker", 1, "distinct", "spread")
    load = llm_workload(maker, run=spec.name, turns=cfg.spread_turns, sessions=cfg.spread_turns)
    runs.append(throughput(spec, load, model, cfg, progress))
    with offline_model():
        # The embedder cache is keyed by OPENAI_BASE_URL too: offline mode gets (and loads) its own.
        get_embedder().embed(["warm up the model"])
        spec = RunSpec("rules-1w", "offline rules extractor, 1 worker", 1, "rules", "burst")
        load = rules_workload(maker.rng, run=spec.name, turns=cfg.turns, sessions=cfg.sessions)
        runs.append(throughput(spec, load, model, cfg, progress))
    out["throughput"] = runs

    progress(f"lag: {cfg.lag_turns} turns one at a time, debounce 0")
    load = llm_workload(maker, run="lag0", turns=cfg.lag_turns, sessions=cfg.lag_sessions)
    out["lag"] = lag(load, model, cfg, debounce=0.0, progress=progress)
    progress(f"lag: {cfg.debounce_turns} turns one at a time, configured debounce {default_debounce:g}s")
    load = llm_workload(maker, run="lagd", turns=cfg.debounce_turns, sessions=cfg.debounce_turns)
    out["lag_default_debounce"] = lag(load, model, cfg, debounce=default_debounce, progress=progress)
    out["scripted_calls_total"] = dict(model.snapshot())
    if out["scripted_calls_total"].get("unknown_turns"):
        # The model answers by matching transcript lines: a format change made it extract nothing.
        raise RuntimeError(f"the scripted model did not recognise turns: {out['scripted_calls_total']}")
    out.update(_headline(out))
    return out


def _headline(out: dict[str, Any]) -> dict[str, Any]:
    by_name = {row["name"]: row for row in out["throughput"]}
    failures = sum(row["jobs_failed"] + row["dead_letters"] for row in out["throughput"])
    missing = sum(row["check"].get("missing", 0) + row["check"].get("replaced_still_present", 0)
                  for row in out["throughput"])  # fmt: skip
    base, debounced = out["lag"]["lag_ms"], out["lag_default_debounce"]["lag_ms"]
    return {
        "turns_per_s_1_worker": by_name["distinct-1w"]["turns_per_s"],
        "jobs_per_s_1_worker": by_name["distinct-1w"]["jobs_per_s"],
        "turns_per_s_2_workers": by_name["distinct-2w"]["turns_per_s"],
        "turns_per_s_contradict_1_worker": by_name["contradict-1w"]["turns_per_s"],
        "turns_per_s_one_turn_per_job": by_name["spread-1w"]["turns_per_s"],
        "turns_per_s_rules": by_name["rules-1w"]["turns_per_s"],
        "lag_p50_ms": base["p50_ms"],
        "lag_p95_ms": base["p95_ms"],
        "debounce_adds_p50_ms": round(debounced["p50_ms"] - base["p50_ms"], 1),
        "pipeline_failures": failures,
        "memories_wrong": missing,
        "pipeline_ok": failures == 0 and missing == 0,
    }


def markdown(result: dict[str, Any]) -> str:
    return render_markdown(result)
