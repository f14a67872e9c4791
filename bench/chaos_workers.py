"""Chaos phase A: extraction workers SIGKILLed and restarted while turns keep arriving.

Two `manage.py memory_worker` processes on a private embedded Redis (AOF on), the offline rules
extractor (no model: no attempt can fail for a reason of its own), turns queued as the chat queues
them. Every 0.5-2 s one worker is SIGKILLed and started again under the same worker id, so it can
resume its own pending entries. Then the workers are left alone until the queue drains, and the
outcome of every turn is checked against what Redis holds.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.chaos_procs import manage, sigkill, spawn, stop, wait_for
from bench.env import Progress
from bench.extraction import counters, enqueue, prepare_sessions, queue_idle
from bench.extraction_script import Workload, rules_workload

# The pipeline's own words for "the delivery count ran out" (memory/extraction/pipeline.py): no
# attempt raised, so such a letter is the work of the kills, not of a failing extraction.
NOT_A_FAILURE_ERRORS = ("failed too many times",)


@dataclass(frozen=True)
class WorkerChaosConfig:
    turns: int
    sessions: int
    workers: int
    kills: int
    kill_every_s: tuple[float, float]
    reclaim_idle_s: float
    drain_timeout_s: float
    seed: int


def worker_env(*, redis_url: str, work_dir: Path, reclaim_idle_s: float) -> dict[str, str]:
    from django.conf import settings

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "DATABASE_PATH": str(work_dir / "db.sqlite3"),
        "ENGRAM_STATE_DIR": str(work_dir),
        # No endpoint, no key: the offline rules extractor, which never fails on these turns.
        "OPENAI_BASE_URL": "",
        "OPENAI_API_KEY": "",
        "EXTRACTION_DEBOUNCE_SECONDS": "0",
        "EXTRACTION_RECLAIM_IDLE_SECONDS": str(reclaim_idle_s),
        "WORKER_HEARTBEAT_SECONDS": "1",
    }


class WorkerPool:
    """Named worker processes; a killed one is started again under its own name."""

    def __init__(self, *, names: list[str], env: dict[str, str], work_dir: Path) -> None:
        self.env = env
        self.work_dir = work_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: Counter[str] = Counter()
        # Where each process's output began in its log, to tell whether it got past its start-up.
        self.log_offsets: dict[str, int] = {}
        self.kills_after_startup = 0
        for name in names:
            self.start(name)

    def start(self, name: str) -> None:
        log = self.work_dir / f"{name}.log"
        self.log_offsets[name] = log.stat().st_size if log.exists() else 0
        self.processes[name] = spawn(manage("memory_worker", "--worker-id", name), env=self.env, log=log)
        self.starts[name] += 1

    def kill_and_restart(self, name: str) -> None:
        sigkill(self.processes[name])
        with (self.work_dir / f"{name}.log").open("rb") as log:
            log.seek(self.log_offsets[name])
            self.kills_after_startup += b"started" in log.read()
        self.start(name)

    def exited(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def stop_all(self) -> None:
        for process in self.processes.values():
            stop(process)


def run_worker_chaos(
    cfg: WorkerChaosConfig, *, redis_url: str, work_dir: Path, progress: Progress
) -> dict[str, Any]:
    from memory.extraction.queue import ensure_group, queue_health
    from memory.index import ensure_index

    work_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)
    workload = rules_workload(rng, run="chaos", turns=cfg.turns, sessions=cfg.sessions)
    ensure_index()
    ensure_group()
    prepare_sessions(workload)
    before = counters()
    names = [f"chaos-w{i}" for i in range(cfg.workers)]
    env = worker_env(redis_url=redis_url, work_dir=work_dir, reclaim_idle_s=cfg.reclaim_idle_s)
    pool = WorkerPool(names=names, env=env, work_dir=work_dir)
    seqs: Counter[str] = Counter()
    queued: list[tuple[str, str, int, str]] = []  # (user, session, seq, text)
    crashed: list[str] = []
    started = time.monotonic()
    try:
        # The turns arrive over the first two thirds of the kills, so workers die mid-job and mid-read.
        per_round = max(1, -(-len(workload.turns) // max(1, cfg.kills * 2 // 3)))
        pending = list(workload.turns)
        for kill in range(cfg.kills):
            for turn in pending[:per_round]:
                enqueue(turn)
                seqs[turn.session_id] += 1
                queued.append((turn.user_id, turn.session_id, seqs[turn.session_id], turn.text))
            pending = pending[per_round:]
            time.sleep(rng.uniform(*cfg.kill_every_s))
            crashed += [f"{name} exited by itself" for name in pool.exited()]
            pool.kill_and_restart(names[kill % len(names)])
            if (kill + 1) % 20 == 0:
                progress(f"  {kill + 1} kills, {len(queued)} turns queued")
        for turn in pending:
            enqueue(turn)
            seqs[turn.session_id] += 1
            queued.append((turn.user_id, turn.session_id, seqs[turn.session_id], turn.text))
        chaos_s = time.monotonic() - started
        locks = _session_locks()
        progress(f"  {cfg.kills} kills done in {chaos_s:.0f}s; waiting for the queue to drain")
        drain_s = wait_for(queue_idle, timeout=cfg.drain_timeout_s, poll=0.25)
        health = queue_health()
    finally:
        pool.stop_all()
    delta = counters() - before
    out = {
        "worker_kills": cfg.kills,
        "worker_starts": dict(pool.starts),
        # A worker needs seconds to start (Django, the embedder): a kill before that hits no work.
        "kills_of_a_started_worker": pool.kills_after_startup,
        "workers_exited_by_themselves": crashed,
        "turns": len(queued),
        "sessions": len(seqs),
        "chaos_s": round(chaos_s, 1),
        # Session locks held when the kills stopped: a killed job's lock holds its session until it expires.
        "session_locks_held_after_kills": locks,
        "drained": drain_s is not None,
        "time_to_drain_s": round(drain_s, 1) if drain_s is not None else None,
        "queue": {k: health[k] for k in ("pending", "lag", "stream_length", "dead_letters")},
        "consumers_in_group": len(health["consumers"]),
        "entries_taken_over": _taken_over(work_dir, names),
        "counters": dict(delta),
    }
    out.update(account(workload, queued, drained=drain_s is not None))
    return out


def account(
    workload: Workload, queued: list[tuple[str, str, int, str]], *, drained: bool = True
) -> dict[str, Any]:
    """Each turn: applied (the session cursor passed it), parked (a dead letter holds it), or lost.

    When the queue did not drain in time, a turn still held in its session's queue is unfinished
    (slow, not lost); once the queue is idle, nothing will ever apply it, so it is lost.
    """
    from core.redis_client import get_redis
    from memory import keys
    from memory.extraction.dead_letters import dead_letters

    client = get_redis()
    sessions = sorted({session for _, session, _, _ in queued})
    cursors = dict(
        zip(
            sessions,
            (int(v or 0) for v in client.mget([keys.extraction(s, "cursor") for s in sessions])),
            strict=True,
        )
    )
    letters = dead_letters(limit=100_000)
    parked: Counter[tuple[str, int]] = Counter()
    errors: Counter[str] = Counter()
    for letter in letters:
        errors[letter.error] += 1
        for turn in letter.turns:
            parked[(letter.session_id, turn.seq)] += 1
    memories = memory_rows()
    message_texts = {(m["session_id"], m["text"]) for m in memories if m["type"] == "message"}
    lost = unextracted = unfinished = 0
    for _, session, seq, text in queued:
        if parked[(session, seq)]:
            continue
        if seq > cursors[session]:
            waiting = not drained and client.hexists(keys.extraction(session, "turns"), str(seq))
            unfinished += 1 if waiting else 0
            lost += 0 if waiting else 1
        elif (session, text) not in message_texts:
            unextracted += 1  # the cursor moved past the turn, yet what was said was not stored
    same: Counter[tuple[str, str, str]] = Counter((m["user_id"], m["type"], m["text"]) for m in memories)
    by_kills = sum(n for error, n in errors.items() if error in NOT_A_FAILURE_ERRORS)
    return {
        "lost_turns": lost,
        "unfinished_turns": unfinished,
        "applied_turns_without_their_message_memory": unextracted,
        "duplicate_memories": sum(n - 1 for n in same.values() if n > 1),
        "memories": len(memories),
        "dead_letters": len(letters),
        "dead_lettered_turns": sum(1 for n in parked.values() if n),
        "turns_parked_twice": sum(1 for n in parked.values() if n > 1),
        "dead_letters_caused_by_kills": by_kills,
        "dead_letter_errors": dict(errors),
    }


def memory_rows() -> list[dict[str, str]]:
    """Every live memory hash (user, session, type, text), read by SCAN: no index query involved."""
    from core.redis_client import get_redis
    from memory import keys

    client = get_redis()
    pattern = keys.memory("") + "*"
    fields = ("user_id", "session_id", "type", "text")
    found = []
    for key in client.scan_iter(match=pattern, count=1000):
        values = client.hmget(key, list(fields))
        if values[3] is not None:
            found.append({f: (v or b"").decode() for f, v in zip(fields, values, strict=True)})
    return found


def _taken_over(work_dir: Path, names: list[str]) -> int:
    """Entries the workers took over from another consumer, as their logs say (memory/worker.py)."""
    total = 0
    for name in names:
        text = (work_dir / f"{name}.log").read_text(errors="replace")
        total += sum(int(n) for n in re.findall(r"took over (\d+) abandoned entries", text))
    return total


def _session_locks() -> dict[str, float]:
    """How many sessions are locked right now, and the longest time left on such a lock."""
    from core.redis_client import get_redis
    from memory import keys

    client = get_redis()
    ttls = [client.pttl(key) for key in client.scan_iter(match=keys.extraction("*", "lock"), count=1000)]
    return {"count": len(ttls), "longest_left_s": round(max(ttls, default=0) / 1000, 1)}
