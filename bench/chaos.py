"""Chaos bench: the product's own processes killed under load, and what that cost.

A. Worker kills (bench/chaos_workers.py): two extraction workers, SIGKILLed and restarted under the
   same id every 0.5-2 s while turns arrive; then every turn's fate: applied, parked, or lost.
B. Redis kills (bench/chaos_redis.py): `manage.py run_engram` (what `make run` starts) under chat
   load over the WebSocket; redis-server SIGKILLed; did every process come back by itself, how
   long after Redis answered again, and is every acknowledged turn still there.

Targets (issue 13): 0 lost turns, 0 duplicate memories, 0 dead letters caused by kills; 0
acknowledged turns lost and every process back within 10 s of Redis answering, with no human action.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench.chaos_redis import RedisChaosConfig, run_redis_chaos
from bench.chaos_report import markdown as render_markdown
from bench.chaos_workers import WorkerChaosConfig, run_worker_chaos
from bench.env import Progress, load_average, private_redis, start_result
from bench.redis_stats import versions

RECOVERY_TARGET_S = 10.0

FULL_WORKERS = WorkerChaosConfig(
    turns=500,
    sessions=50,
    workers=2,
    kills=100,
    kill_every_s=(0.5, 2.0),
    reclaim_idle_s=5.0,
    drain_timeout_s=300.0,
    seed=20_261_201,
)
QUICK_WORKERS = WorkerChaosConfig(
    turns=100,
    sessions=20,
    workers=2,
    kills=20,
    kill_every_s=(0.5, 2.0),
    reclaim_idle_s=5.0,
    drain_timeout_s=150.0,
    seed=20_261_201,
)
FULL_REDIS = RedisChaosConfig(kills=3, visitors=2, load_before_kill_s=5.0, recover_timeout_s=30.0)
QUICK_REDIS = RedisChaosConfig(kills=1, visitors=2, load_before_kill_s=3.0, recover_timeout_s=30.0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = bool(args.quick)
    workers_cfg, redis_cfg = (QUICK_WORKERS, QUICK_REDIS) if quick else (FULL_WORKERS, FULL_REDIS)
    progress = Progress("chaos")
    config = {"workers": asdict(workers_cfg), "redis": asdict(redis_cfg)}
    result = start_result("chaos", quick=quick, config=config, progress=progress)
    with TemporaryDirectory(prefix="engram-chaos-") as tmp:
        work = Path(tmp)
        progress(
            f"A: {workers_cfg.workers} workers, {workers_cfg.turns} turns over {workers_cfg.sessions} "
            f"sessions, {workers_cfg.kills} worker SIGKILLs"
        )
        with private_redis(work / "redis-a") as url:
            from core.redis_client import get_redis

            result["versions"] = versions(get_redis())
            result["workers"] = run_worker_chaos(
                workers_cfg, redis_url=url, work_dir=work / "a", progress=progress
            )
        _say_workers(result["workers"], progress)
        progress(f"B: make run's launcher under chat load, {redis_cfg.kills} redis-server SIGKILLs")
        result["redis"] = run_redis_chaos(redis_cfg, work_dir=work / "b", progress=progress)
        _say_redis(result["redis"], progress)
    result.update(headline(result))
    result["load_average_end"] = load_average()
    result["duration_s"] = round(progress.elapsed, 1)
    result["progress_log"] = progress.log
    return result


def headline(result: dict[str, Any]) -> dict[str, Any]:
    a, b = result["workers"], result["redis"]
    recover = [k["time_to_recover_s"] for k in b["kills"]]
    worst = max((t for t in recover if t is not None), default=None)
    # A quick run is a smoke run: it needs only its own (smaller) sizes.
    quick = bool(result["quick"])
    kills_needed = QUICK_WORKERS.kills if quick else 100
    redis_kills_needed = QUICK_REDIS.kills if quick else 3
    targets = [
        (f"worker kills >= {kills_needed}", a["worker_kills"] >= kills_needed),
        ("0 lost turns", a["lost_turns"] == 0 and a["applied_turns_without_their_message_memory"] == 0),
        ("0 duplicate memories", a["duplicate_memories"] == 0),
        ("0 dead letters caused by kills", a["dead_letters_caused_by_kills"] == 0),
        ("queue drained", a["drained"]),
        (f"redis kills >= {redis_kills_needed}", b["redis_kills"] >= redis_kills_needed),
        ("0 acknowledged turns lost", b["acknowledged_turns_lost"] == 0),
        ("every process back by itself", b["recovered_after_redis_restart"]),
        (
            f"back within {RECOVERY_TARGET_S:g} s of Redis answering",
            bool(recover) and all(t is not None and t <= RECOVERY_TARGET_S for t in recover),
        ),
    ]
    return {
        "worker_kills": a["worker_kills"],
        "turns": a["turns"],
        "lost_turns": a["lost_turns"],
        "duplicate_memories": a["duplicate_memories"],
        "dead_letters": a["dead_letters"],
        "dead_letters_caused_by_kills": a["dead_letters_caused_by_kills"],
        "time_to_drain_s": a["time_to_drain_s"],
        "redis_kills": b["redis_kills"],
        "acknowledged_turns_lost": b["acknowledged_turns_lost"],
        "recovered_after_redis_restart": b["recovered_after_redis_restart"],
        "time_to_recover_s": recover,
        "worst_time_to_recover_s": worst,
        "targets": [{"name": name, "pass": ok} for name, ok in targets],
        "all_pass": all(ok for _, ok in targets),
    }


def _say_workers(a: dict[str, Any], progress: Progress) -> None:
    progress(
        f"  A: {a['turns']} turns, {a['lost_turns']} lost, {a['duplicate_memories']} duplicate memories, "
        f"{a['dead_letters']} dead letters ({a['dead_letters_caused_by_kills']} caused by kills), "
        f"drained in {a['time_to_drain_s']}s"
    )


def _say_redis(b: dict[str, Any], progress: Progress) -> None:
    progress(
        f"  B: {b['redis_kills']} Redis kills, {b['acknowledged_turns']} acknowledged turns, "
        f"{b['acknowledged_turns_lost']} lost; recovered by itself: {b['recovered_after_redis_restart']}"
    )


def markdown(result: dict[str, Any]) -> str:
    return render_markdown(result)
