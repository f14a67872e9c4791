"""Chat load bench: 100 concurrent WebSocket sessions x 10 turns against the scripted streaming model.

Setup: a private embedded Redis, a migrated temporary SQLite database, anonymous visitors (a
Django session carrying `engram_anon_id` each) with one chat session and a few memories each,
the scripted streaming model in its own process (bench/chat_load_llm.py) and daphne in a
subprocess. Phases: warm-up (daphne loads the embedder), baseline (one client alone), load (every
client at once, each sending its turns one after another).

Per turn the client records send, first `delta` and `done`; the scripted model records when the
request arrived and when its last chunk was written, so server-side overhead = (send → done) -
the model's own time. Daphne's retrieval trace of each turn (saved in Redis: when `build_prompt`
started and how long it took) splits that overhead into before / during / after retrieval.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench.chat_load_analysis import analyse, cpu_seconds, redis_command_stats
from bench.chat_load_client import ClientPlan, run_clients
from bench.chat_load_costs import (
    EMBEDDINGS,
    PROMPTS,
    build_prompt_cost,
    channel_layer_frame,
    direct_frame,
    embed_one_message,
    stream_cost,
)
from bench.chat_load_llm import StreamingModel, StreamTiming
from bench.chat_load_profile import py_spy, summarise_profile
from bench.chat_load_report import markdown as render_markdown
from bench.corpus import Corpus
from bench.env import BASE_DIR, Progress, load_average, private_redis, start_result
from bench.redis_stats import reset_command_stats, versions
from bench.stats import Target

SERVER_START_TIMEOUT = 90.0
LISTENING = "Listening on TCP address"  # daphne's log line once its socket accepts
# A log record of config/settings.py's format starts with "YYYY-MM-DD HH:MM:SS,mmm LEVEL".
_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


@dataclass(frozen=True)
class ChatLoadConfig:
    clients: int
    turns: int  # per client, sequential
    memories_per_user: int
    warmup_turns: int
    baseline_turns: int
    chunks: int  # content chunks per streamed reply
    chunk_delay: float  # seconds between streamed chunks
    frame_timeout: float  # a turn with no frame for this long is an error
    seed: int


FULL = ChatLoadConfig(
    clients=100,
    turns=10,
    memories_per_user=6,
    warmup_turns=3,
    baseline_turns=20,
    chunks=20,
    chunk_delay=0.02,
    frame_timeout=30.0,
    seed=20_251_124,
)
QUICK = ChatLoadConfig(
    clients=20,
    turns=3,
    memories_per_user=4,
    warmup_turns=2,
    baseline_turns=5,
    chunks=20,
    chunk_delay=0.02,
    frame_timeout=20.0,
    seed=20_251_124,
)


@dataclass(frozen=True)
class Visitor:
    user_id: str
    session_id: str
    cookie: str


# --- Setup ---------------------------------------------------------------------------------------


@contextmanager
def temp_database(path: Path) -> Iterator[str]:
    """Point Django's default database at a fresh SQLite file and migrate it; restored afterwards."""
    from django.core.management import call_command
    from django.db import connections

    connection = connections["default"]
    saved = connection.settings_dict["NAME"]
    connection.close()
    # The connection's settings dict is settings.DATABASES["default"]: one change covers both.
    connection.settings_dict["NAME"] = str(path)
    try:
        call_command("migrate", verbosity=0, interactive=False)
        yield str(path)
    finally:
        connection.close()
        connection.settings_dict["NAME"] = saved


def create_visitors(count: int, prefix: str) -> list[Visitor]:
    """Anonymous visitors as the site makes them: a Django session with `engram_anon_id`, and a chat
    session owned by `anon-<id>` in working memory."""
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore

    from chat.identity import ANON_SESSION_KEY, anonymous_memory_id
    from memory import working

    visitors = []
    for i in range(count):
        anon_id = f"bench{prefix}{i:04d}"
        store = SessionStore()
        store[ANON_SESSION_KEY] = anon_id
        store.save()
        user_id = anonymous_memory_id(anon_id)
        session_id = f"{prefix}-{i:04d}"
        working.ensure_session(session_id=session_id, user_id=user_id)
        visitors.append(Visitor(user_id, session_id, f"{settings.SESSION_COOKIE_NAME}={store.session_key}"))
    return visitors


def seed_memories(visitors: list[Visitor], per_user: int, corpus: Corpus) -> None:
    """A few memories per visitor (really embedded), so retrieval has something to rank."""
    from bench.engine_data import EXTRACTOR
    from memory.services import NewMemory, add_memories
    from memory.types import Scope

    items = []
    for visitor in visitors:
        for _ in range(per_user):
            fact = corpus.draft().fact()
            items.append(NewMemory(text=fact.text, scope=Scope(user_id=visitor.user_id), type=fact.type,
                                   topics=list(fact.topics), entities=list(fact.entities)))  # fmt: skip
    for start in range(0, len(items), 100):
        add_memories(items=items[start : start + 100], actor=EXTRACTOR)


@dataclass
class Daphne:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_errors(self) -> list[str]:
        """Each ERROR record with its traceback (the lines up to the next record)."""
        blocks: list[list[str]] = []
        inside = False
        for line in self.log.read_text(errors="replace").splitlines():
            if _LOG_RECORD.match(line):
                inside = " ERROR " in line
                if inside:
                    blocks.append([line])
            elif inside and not line.startswith("127.0.0.1:"):  # daphne's access log is not part of it
                blocks[-1].append(line)
        return ["\n".join(block) for block in blocks]

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def server_environment(*, redis_url: str, db_path: str, llm_url: str, state_dir: Path) -> dict[str, str]:
    from django.conf import settings

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "DATABASE_PATH": db_path,
        "ENGRAM_STATE_DIR": str(state_dir),
        # The sessions were signed by this process: the server must use the same key.
        "SECRET_KEY": settings.SECRET_KEY,
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "bench-key",
        "LLM_MAX_RETRIES": "0",  # a retry would hide a failed call inside a slow turn
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CHAT_RATE_LIMIT_PER_MINUTE": "1000000",
    }


@dataclass
class ServerGroup:
    """`processes` daphne processes on one port, as `make run` starts them (core/listeners.py)."""

    url: str
    servers: list[Daphne]

    @property
    def pids(self) -> list[int]:
        return [server.process.pid for server in self.servers]

    def log_errors(self) -> list[str]:
        return [error for server in self.servers for error in server.log_errors()]

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(server.log_tail(lines) for server in self.servers)


@contextmanager
def server_group(env: dict[str, str], log_dir: Path, *, processes: int) -> Iterator[ServerGroup]:
    """`processes` daphne processes sharing one free port, each answering; always stopped."""
    from core.embedded_redis import free_port
    from core.listeners import serve_args, server_sockets

    port = free_port()
    sockets = server_sockets(host="127.0.0.1", port=port, count=processes)
    servers: list[Daphne] = []
    try:
        for n, sock in enumerate(sockets, start=1):
            log = log_dir / f"daphne-{processes}p-{n}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    serve_args(sock), cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                    pass_fds=(sock.fileno(),),
                )  # fmt: skip
            servers.append(Daphne(f"http://127.0.0.1:{port}", process, log))
        for sock in {id(sock): sock for sock in sockets}.values():
            sock.close()  # each process holds its own
        group = ServerGroup(f"http://127.0.0.1:{port}", servers)
        for server in servers:
            _wait_for_health(server, listening=True)
        yield group
    finally:
        for server in servers:
            _stop(server.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def daphne_server(env: dict[str, str], log: Path) -> Iterator[Daphne]:
    """daphne in a subprocess on a free port, answering /healthz; always stopped."""
    from core.embedded_redis import free_port

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "core.serve",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "config.asgi:application",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Daphne(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_for_health(server)
        yield server
    finally:
        _stop(process)


def _wait_for_health(server: Daphne, *, listening: bool = False) -> None:
    """/healthz answers (and, with `listening`, this process listens: the port's other processes
    may be the ones answering)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"daphne exited:\n{server.log_tail()}")
        if listening and LISTENING not in server.log.read_text(errors="replace"):
            time.sleep(0.25)
            continue
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"daphne did not answer /healthz in {SERVER_START_TIMEOUT:.0f}s:\n{server.log_tail()}")


def health(server: Daphne | ServerGroup, env: dict[str, str]) -> dict[str, Any]:
    """The public liveness answer, with the model endpoint the server was started with (the
    details /healthz used to show are on the staff status page now)."""
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as response:  # noqa: S310 - loopback
        data: dict[str, Any] = json.loads(response.read())
    return {**data, "llm_endpoint": env.get("OPENAI_BASE_URL", "")}


# --- Driving clients -----------------------------------------------------------------------------


def turn_texts(visitors: list[Visitor], turns: int, corpus: Corpus, tag: str) -> list[list[str]]:
    """Unique user messages: the tag is how each turn finds its model call and trace."""
    return [
        [f"[{tag}{i:03d}.{n:02d}] {corpus.question()}" for n in range(turns)] for i in range(len(visitors))
    ]


def plans_for(
    server: Daphne | ServerGroup, visitors: list[Visitor], texts: list[list[str]]
) -> list[ClientPlan]:
    ws_base = server.url.replace("http://", "ws://")
    return [
        ClientPlan(f"{ws_base}/ws/chat/{v.session_id}/", v.cookie, t)
        for v, t in zip(visitors, texts, strict=True)
    ]


def traces_by_query(visitors: list[Visitor]) -> dict[str, dict[str, Any]]:
    """Daphne's retrieval trace of every turn, by the user's message."""
    from memory import working

    out = {}
    for visitor in visitors:
        for trace in working.list_traces(session_id=visitor.session_id):
            out[str(trace.get("query", ""))] = trace
    return out


@dataclass
class Processes:
    """The server-side pids whose CPU time the bench reads, to say where the 2 cores went."""

    daphne: list[int]
    redis: int
    model: int

    @classmethod
    def of(cls, servers: ServerGroup, model: StreamingModel) -> Processes:
        from core.redis_client import get_redis

        return cls(servers.pids, int(get_redis().info("server")["process_id"]), model.pid)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far; "daphne" is the sum over the server processes."""
        return {
            "daphne": sum(cpu_seconds(pid) for pid in self.daphne),
            "redis": cpu_seconds(self.redis),
            "model": cpu_seconds(self.model),
        }


@dataclass
class Rig:
    """What every phase drives and reads."""

    server: ServerGroup
    model: StreamingModel
    processes: Processes
    cfg: ChatLoadConfig
    corpus: Corpus
    progress: Progress

    def phase(self, name: str, visitors: list[Visitor], turns: int) -> dict[str, Any]:
        """Every visitor at once, `turns` turns each; the per-turn analysis plus CPU and Redis time."""
        from core.redis_client import get_redis

        client = get_redis()
        texts = turn_texts(visitors, turns, self.corpus, name[0])
        total = len(visitors) * turns
        self.progress(f"{name}: {len(visitors)} client(s) x {turns} turns")
        reset_command_stats(client)
        cpu_before = self.processes.cpu()
        started = time.time()
        # Origin http://127.0.0.1:PORT: what a browser on the chat page sends.
        plans = plans_for(self.server, visitors, texts)
        run = run_clients(plans, origin=self.server.url, timeout=self.cfg.frame_timeout)
        wall = time.time() - started
        cpu_after = self.processes.cpu()
        timings: dict[str, StreamTiming] = {t.user_text: t for t in self.model.timings()}
        out = analyse(run.results, timings, traces_by_query(visitors), expected_turns=total)
        out["wall_s"] = round(wall, 2)
        out["cpu_s"] = {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_before}
        out["cpu_s"]["load_generator"] = round(run.cpu_s, 2)
        out["redis"] = redis_command_stats(client, turns=max(1, out["turns_completed"]))
        overhead, ttft = out["overhead_ms"], out["ttft_ms"]
        self.progress(
            f"  {out['turns_completed']}/{total} turns, {out['errors']} errors, "
            f"{out['throughput_turns_per_s']:.1f} turns/s; overhead p50 {overhead.get('p50_ms', 0):.0f} ms "
            f"p95 {overhead.get('p95_ms', 0):.0f} ms; TTFT p95 {ttft.get('p95_ms', 0):.0f} ms"
        )
        return out


# --- Orchestration -------------------------------------------------------------------------------


def targets(clients: int, turns: int, processes: int) -> list[Target]:
    return [
        Target(
            "errors",
            f"Errors over every phase ({clients} sessions x {turns} turns per load round; "
            "error frames, timeouts, disconnects, lost turns, ERROR records in the servers' logs)",
            0,
            "errors",
        ),
        Target(
            "multi_process_speedup",
            f"Throughput of {processes} server processes / 1 process, same load",
            1.7,
            "x",
            at_least=True,
        ),
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = QUICK if args.quick else FULL
    progress = Progress("chat_load")
    result = start_result("chat_load", quick=bool(args.quick), config=asdict(cfg), progress=progress)
    with TemporaryDirectory(prefix="engram-bench-") as tmp:
        root = Path(tmp)
        with private_redis(root / "redis") as redis_url, temp_database(root / "db.sqlite3") as db_path:
            profile = not getattr(args, "no_profile", False)
            result.update(
                _measure(cfg, redis_url, db_path, root, progress, quick=bool(args.quick), profile=profile)
            )
    result["load_average_end"] = load_average()
    result["duration_s"] = round(progress.elapsed, 1)
    result["progress_log"] = progress.log
    result["targets"] = [
        t.check(result[t.key]) for t in targets(cfg.clients, cfg.turns, result["server_processes"])
    ]
    result["all_pass"] = all(t["pass"] for t in result["targets"])
    for row in result["targets"]:
        progress(
            f"target {row['label']}: {row['value']} ({row['target']}) {'PASS' if row['pass'] else 'FAIL'}"
        )
    return result


def _measure(
    cfg: ChatLoadConfig,
    redis_url: str,
    db_path: str,
    root: Path,
    progress: Progress,
    *,
    quick: bool,
    profile: bool,
) -> dict[str, Any]:
    from core.redis_client import get_redis

    out: dict[str, Any] = {"versions": versions(get_redis())}
    corpus = Corpus(cfg.seed)
    many = server_processes()
    order = ROUNDS_QUICK if quick else ROUNDS
    # Per server group: warm-up clients, one baseline client; then fresh visitors per load round.
    warm = prepare_visitors(2 * (many + 2), "warm", cfg, corpus, progress)
    rounds = [prepare_visitors(cfg.clients, f"load{n}", cfg, corpus, progress) for n in range(len(order))]
    model = StreamingModel(chunks=cfg.chunks, chunk_delay=cfg.chunk_delay)
    try:
        llm_url = model.start()
        out["unit_costs"] = unit_costs(redis_url, llm_url, warm[0], corpus, progress)
        env = server_environment(
            redis_url=redis_url, db_path=db_path, llm_url=llm_url, state_dir=root / "state"
        )
        progress(f"starting 1 daphne process and, on another port, {many}")
        with (
            server_group(env, root, processes=1) as single,
            server_group(env, root, processes=many) as multi,
        ):
            out["health"] = health(single, env)
            rigs = {
                1: Rig(single, model, Processes.of(single, model), cfg, corpus, progress),
                many: Rig(multi, model, Processes.of(multi, model), cfg, corpus, progress),
            }
            half = len(warm) // 2
            out["warmup"] = rigs[1].phase("warm-up", warm[:1], cfg.warmup_turns)
            out["multi_warmup"] = rigs[many].phase("warm-up", warm[half : half + many + 1], cfg.warmup_turns)
            out["baseline"] = rigs[1].phase("baseline", warm[1:2], cfg.baseline_turns)
            out["multi_baseline"] = rigs[many].phase(
                "baseline", warm[half + many + 1 : half + many + 2], cfg.baseline_turns
            )
            runs: dict[int, list[dict[str, Any]]] = {1: [], many: []}
            for n, (which, visitors) in enumerate(zip(order, rounds, strict=True)):
                count = 1 if which == "single" else many
                # py-spy samples one of the N processes through its first load round.
                sampled = profile and which == "multi" and not runs[many]
                with py_spy(multi.pids[0] if sampled else None, root / "profile.txt", progress) as samples:
                    runs[count].append(
                        rigs[count].phase(f"load {n + 1}: {count} process(es)", visitors, cfg.turns)
                    )
                if samples is not None:
                    out["profile"] = summarise_profile(samples)
            out["load"], out["multi_load"] = runs[1][0], runs[many][0]
            taken = {1: iter(runs[1]), many: iter(runs[many])}  # in the order they ran
            out["rounds"] = [
                {"processes": c, **_round_summary(next(taken[c]))}
                for c in (1 if which == "single" else many for which in order)
            ]
            out["server_log_errors"] = (single.log_errors() + multi.log_errors())[:20]
            out["server_log_tail"] = multi.log_tail(20).splitlines()
        out["scripted_model_errors"] = model.errors()
    finally:
        model.stop()
    phases = [out[name] for name in ("warmup", "multi_warmup", "baseline", "multi_baseline")]
    phases += [phase for count in runs for phase in runs[count]]
    out["errors"] = (
        sum(p["errors"] for p in phases) + len(out["server_log_errors"]) + len(out["scripted_model_errors"])
    )
    out["nominal_model_ms"] = round(1000 * (cfg.chunks + 2) * cfg.chunk_delay, 1)
    out["server_processes"] = many
    single_rate = statistics.mean(p["throughput_turns_per_s"] for p in runs[1])
    multi_rate = statistics.mean(p["throughput_turns_per_s"] for p in runs[many])
    out["single_process_turns_per_s"] = round(single_rate, 2)
    out["multi_process_turns_per_s"] = round(multi_rate, 2)
    out["multi_process_speedup"] = round(multi_rate / single_rate, 3) if single_rate else 0.0
    return out


# Load rounds, alternated so that a change in the machine's other load hits both sides alike.
ROUNDS = ("single", "multi", "multi", "single")
ROUNDS_QUICK = ("single", "multi")


def server_processes() -> int:
    """The N of the side-by-side: what `make run` starts (SERVER_PROCESSES; one per core), at least 2."""
    from django.conf import settings

    return max(2, int(settings.SERVER_PROCESSES))


def _round_summary(phase: dict[str, Any]) -> dict[str, Any]:
    turns = max(1, phase["turns_completed"])
    return {
        "turns_per_s": phase["throughput_turns_per_s"],
        "errors": phase["errors"],
        "wall_s": phase["wall_s"],
        "cpu_ms_per_turn": {k: round(1000 * v / turns, 1) for k, v in phase["cpu_s"].items()},
        "redis_calls_per_turn": phase["redis"]["calls_per_turn"],
        "overhead_p95_ms": phase["overhead_ms"].get("p95_ms", 0.0),
    }


def unit_costs(
    redis_url: str, llm_url: str, visitor: Visitor, corpus: Corpus, progress: Progress
) -> dict[str, Any]:
    """What a turn's pieces cost alone, in this process (see bench/chat_load_costs.py)."""
    progress("unit costs in this process: build_prompt, a streamed reply, a channel-layer frame")
    return {
        "embedding": embed_one_message([corpus.question() for _ in range(EMBEDDINGS)]),
        "build_prompt": build_prompt_cost(
            visitor.user_id, visitor.session_id, [corpus.question() for _ in range(PROMPTS)]
        ),
        "stream": stream_cost(llm_url),
        "channel_layer": channel_layer_frame(redis_url),
        "direct_frame": direct_frame(),
    }


def prepare_visitors(
    count: int, prefix: str, cfg: ChatLoadConfig, corpus: Corpus, progress: Progress
) -> list[Visitor]:
    visitors = create_visitors(count, prefix)
    progress(f"{count} anonymous visitors, a chat session and {cfg.memories_per_user} memories each")
    seed_memories(visitors, cfg.memories_per_user, corpus)
    return visitors


def markdown(result: dict[str, Any]) -> str:
    return render_markdown(result)
