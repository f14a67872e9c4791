"""Chaos phase B: redis-server SIGKILLed under chat load, with the product run as `make run` runs it.

`manage.py run_engram` (core/launcher.py) starts the embedded Redis (AOF on), daphne and a worker,
on its own ports and state folder. Visitors chat over the WebSocket without pause. Each round
SIGKILLs redis-server and then waits, in this order and each with a timeout:
1. for Redis to answer again by itself (the launcher restarting it);
2. if it does not, the bench brings it back as an operator would, and records that it had to:
   the same redis-server command line when the launcher still runs, else the launcher itself;
3. from Redis answering PING: the first successful chat turn, /healthz ok and a fresh worker
   heartbeat (`time_to_recover_s`).
At the end, every turn whose `done` frame arrived must be in working memory and queued or
extracted (its `message` memory stored, or still pending, or parked in a dead letter).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from websockets.sync.client import connect
from websockets.typing import Origin

from bench.chaos_procs import (
    descendants,
    kill_leftovers,
    manage,
    redis_server_pid,
    spawn,
    stop,
    wait_for,
)
from bench.env import Progress
from bench.persona_ws import Browser

START_TIMEOUT = 180.0  # daphne loads the embedder at start
BY_ITSELF_WAIT = 15.0  # how long Redis gets to come back on its own before the bench restarts it
TURN_TIMEOUT = 20.0
DRAIN_TIMEOUT = 90.0
HEARTBEAT_FRESH_S = 3.0  # three missed beats of WORKER_HEARTBEAT_SECONDS=1


@dataclass(frozen=True)
class RedisChaosConfig:
    kills: int
    visitors: int
    load_before_kill_s: float
    recover_timeout_s: float


@dataclass
class Turn:
    session_id: str
    text: str
    acknowledged: bool
    error: str
    sent_at: float


def send_turn(browser: Browser, session_id: str, text: str, *, timeout: float = TURN_TIMEOUT) -> Turn:
    """One message on a fresh socket, as the chat tab sends it after a reconnect; never raises."""
    sent_at = time.time()
    ws_url = browser.base_url.replace("http://", "ws://") + f"/ws/chat/{session_id}/"
    try:
        with connect(
            ws_url,
            origin=Origin(browser.base_url),
            additional_headers={"Cookie": browser.cookie_header()},
            open_timeout=min(10.0, timeout),
            close_timeout=2,
        ) as socket:
            socket.send(json.dumps({"type": "message", "text": text, "client_id": f"c{time.time_ns()}"}))
            deadline = time.monotonic() + timeout
            while True:
                frame = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
                if frame.get("type") == "done":
                    return Turn(session_id, text, True, "", sent_at)
                if frame.get("type") in {"error", "duplicate"}:
                    return Turn(session_id, text, False, str(frame.get("code") or frame["type"]), sent_at)
    except Exception as exc:
        return Turn(session_id, text, False, type(exc).__name__, sent_at)


class Product:
    """The launcher and everything under it; `close()` leaves nothing running."""

    def __init__(self, work_dir: Path) -> None:
        from django.conf import settings

        from core.embedded_redis import free_port

        work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir = work_dir
        self.redis_port, self.http_port = free_port(), free_port()
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "1",
            "EMBEDDED_REDIS_PORT": str(self.redis_port),
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.http_port),
            "ENGRAM_STATE_DIR": str(work_dir / "state"),
            "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            "WORKER_HEARTBEAT_SECONDS": "1",
            "OPENAI_BASE_URL": "",
            "OPENAI_API_KEY": "",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CHAT_RATE_LIMIT_PER_MINUTE": "10000",
            "EXTRACTION_DEBOUNCE_SECONDS": "0.3",
        }
        for name in ("REDIS_URL", "DATABASE_PATH"):
            self.env.pop(name, None)
        self.log = work_dir / "launcher.log"
        self.launcher: subprocess.Popen[bytes] | None = None
        self.launches = 0
        self.exit_codes: list[int] = []
        self.own_redis: list[subprocess.Popen[bytes]] = []
        self.seen_pids: set[int] = set()

    # --- lifecycle ---

    def launch(self) -> None:
        if self.launcher is not None and self.launcher.poll() is not None:
            self.exit_codes.append(self.launcher.returncode)
        self.launcher = spawn(manage("run_engram"), env=self.env, log=self.log)
        self.launches += 1

    def launcher_alive(self) -> bool:
        return self.launcher is not None and self.launcher.poll() is None

    def remember_pids(self) -> None:
        if self.launcher is not None:
            self.seen_pids |= descendants(self.launcher.pid) | {self.launcher.pid}

    def restart_redis(self) -> None:
        """What an operator would do: the launcher's redis-server command, same port and data (AOF)."""
        from core.embedded_redis import EmbeddedRedis

        server = EmbeddedRedis(port=self.redis_port, data_dir=self.work_dir / "state" / "redis")
        self.own_redis.append(spawn(server.command(), env=self.env, log=self.work_dir / "redis-by-bench.log"))

    def close(self) -> list[int]:
        self.remember_pids()
        if self.launcher is not None:
            stop(self.launcher, timeout=30)
        for process in self.own_redis:
            stop(process)
        time.sleep(0.3)
        markers = (str(self.work_dir), f":{self.redis_port}", f"HTTP_PORT={self.http_port}")
        return kill_leftovers(self.seen_pids | {p.pid for p in self.own_redis}, markers=markers)

    # --- probes (short timeouts: they run while things are down) ---

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_connect_timeout=0.5, socket_timeout=2)

    def pings(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def healthz_ok(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as response:  # noqa: S310
                return bool(json.loads(response.read()).get("status") == "ok")
        except (OSError, ValueError):
            return False

    def heartbeat_fresh(self) -> bool:
        from core.workers import heartbeats_key

        client = self.client()
        try:
            beats = client.hgetall(heartbeats_key())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()
        now = time.time()
        return any(now - float(ts) < HEARTBEAT_FRESH_S for ts in beats.values())

    def healthy(self) -> bool:
        return self.launcher_alive() and self.healthz_ok() and self.heartbeat_fresh()

    def log_tail(self, lines: int = 15) -> list[str]:
        """The launcher's last lines that say something (no access log, no progress bars)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        noise = ('"WS', '"GET ', '"POST ', "Loading weights", "AXES: BEGIN")
        kept = [line for line in text.splitlines() if line.strip() and not any(n in line for n in noise)]
        return kept[-lines:]


@dataclass
class ChatLoad:
    """Visitors chatting without pause in threads; every turn's outcome is kept."""

    product: Product
    visitors: int
    turns: list[Turn] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for n in range(self.visitors):
            thread = threading.Thread(target=self._visit, args=(n,), name=f"chaos-visitor-{n}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _visit(self, n: int) -> None:
        browser = Browser(self.product.base_url)
        session_id = ""
        count = 0
        while not self.stop_event.is_set():
            if not session_id:
                try:
                    session_id = browser.new_chat()
                except Exception:
                    time.sleep(0.5)
                    continue
            count += 1
            turn = send_turn(browser, session_id, f"Chaos visitor {n} says note {count} is about gardening.")
            with self.lock:
                self.turns.append(turn)
            time.sleep(0.1 if turn.acknowledged else 0.5)

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=TURN_TIMEOUT + 15)

    def last_ack_after(self, at: float) -> bool:
        with self.lock:
            return any(t.acknowledged and t.sent_at >= at for t in self.turns)


def run_redis_chaos(cfg: RedisChaosConfig, *, work_dir: Path, progress: Progress) -> dict[str, Any]:
    product = Product(work_dir)
    out: dict[str, Any] = {"redis_kills": 0, "kills": [], "launches": 0}
    load: ChatLoad | None = None
    probe_turns: list[Turn] = []
    try:
        product.launch()
        started = wait_for(product.healthy, timeout=START_TIMEOUT, poll=0.5)
        if started is None:
            raise RuntimeError("the launcher did not come up: " + " | ".join(product.log_tail()))
        progress(f"  the launcher is up in {started:.0f}s; chat load with {cfg.visitors} visitors")
        product.remember_pids()
        probe = Browser(product.base_url)
        probe_chat = probe.new_chat()
        load = ChatLoad(product, cfg.visitors)
        load.start()
        for n in range(cfg.kills):
            ready = wait_for(lambda: _ready(product, probe, probe_chat, probe_turns), timeout=START_TIMEOUT)
            if ready is None:
                out["kills"].append({"kill": n + 1, "skipped": "the product was not healthy before the kill"})
                continue
            time.sleep(cfg.load_before_kill_s)
            record = kill_round(product, cfg, probe, probe_chat, probe_turns, load)
            out["redis_kills"] += 1
            out["kills"].append(record)
            progress(
                f"  Redis kill {n + 1}: back by {record['redis_restarted_by']}, "
                f"first turn {record['first_turn_after_ping_s']}s, recovered {record['time_to_recover_s']}s"
            )
        load.stop()
        out.update(final_check(product, load.turns + probe_turns, progress))
    finally:
        if load is not None:
            load.stop()
        out["launches"] = product.launches
        out["launcher_log_tail"] = product.log_tail(25)
        out["left_running_and_killed"] = product.close()
    kills = [k for k in out["kills"] if "skipped" not in k]
    out["recovered_after_redis_restart"] = bool(kills) and all(k["recovered_by_itself"] for k in kills)
    out["time_to_recover_s"] = [k["time_to_recover_s"] for k in kills]
    return out


def _ready(product: Product, probe: Browser, probe_chat: str, probe_turns: list[Turn]) -> bool:
    """Healthy, and a chat turn goes through (the first one also loads the embedder in daphne)."""
    if not product.healthy():
        time.sleep(0.5)
        return False
    turn = send_turn(probe, probe_chat, f"Probe before a Redis kill, at {time.time():.3f} exactly.")
    probe_turns.append(turn)
    return turn.acknowledged


def kill_round(
    product: Product,
    cfg: RedisChaosConfig,
    probe: Browser,
    probe_chat: str,
    probe_turns: list[Turn],
    load: ChatLoad,
) -> dict[str, Any]:
    pid = redis_server_pid(product.redis_port)
    if pid is None:
        raise RuntimeError(f"no redis-server on port {product.redis_port}")
    launches_before = product.launches
    product.remember_pids()
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    # Nothing can bring Redis back by itself once the launcher has exited: stop waiting then.
    wait_for(lambda: product.pings() or not product.launcher_alive(), timeout=BY_ITSELF_WAIT)
    back = 0.0 if product.pings() else None
    launcher_alive = product.launcher_alive()
    exit_reason: list[str] = []
    if back is not None:
        restarted_by = "itself (the launcher)"
    elif launcher_alive:
        restarted_by = "the bench (the launcher runs but did not restart Redis)"
        product.restart_redis()
    else:
        restarted_by = "the bench (the launcher had exited; started it again)"
        exit_reason = [line for line in product.log_tail(40) if "exited" in line or "Error" in line][-3:]
        product.launch()
    if back is None and wait_for(product.pings, timeout=60) is None:
        raise RuntimeError("Redis did not answer again after a restart: " + " | ".join(product.log_tail()))
    ping_at = time.monotonic()
    wall_ping_at = time.time()

    def a_turn_works() -> bool:
        if load.last_ack_after(wall_ping_at):
            return True
        turn = send_turn(probe, probe_chat, f"Probe after Redis came back, at {time.time():.3f} exactly.")
        probe_turns.append(turn)
        return turn.acknowledged

    first_turn = wait_for(a_turn_works, timeout=cfg.recover_timeout_s, poll=0.2)
    healthy = wait_for(product.healthy, timeout=cfg.recover_timeout_s, poll=0.2)
    recovered = None
    if first_turn is not None and healthy is not None:
        recovered = round(time.monotonic() - ping_at, 2)
    product.remember_pids()
    return {
        "redis_down_s": round(ping_at - killed_at, 2),
        "redis_restarted_by": restarted_by,
        "launcher_survived": launcher_alive,
        "first_turn_after_ping_s": round(first_turn, 2) if first_turn is not None else None,
        "healthz_and_heartbeat_after_first_turn_s": round(healthy, 2) if healthy is not None else None,
        "time_to_recover_s": recovered,
        "recovered_by_itself": back is not None
        and product.launches == launches_before
        and recovered is not None,
        "launcher_exit": (
            {"code": product.exit_codes[-1] if product.exit_codes else None, "said": exit_reason}
            if not launcher_alive
            else None
        ),
    }


def final_check(product: Product, turns: list[Turn], progress: Progress) -> dict[str, Any]:
    """After the load: bring the product up (if it is down), let the worker drain, check every ack."""
    from django.conf import settings

    from core.redis_client import pointed_at

    if not product.healthy():
        if not product.launcher_alive():
            product.launch()
        wait_for(product.healthy, timeout=START_TIMEOUT, poll=0.5)
    with pointed_at(product.redis_url, channel_prefix=f"{settings.REDIS_KEY_PREFIX}:asgi"):
        from memory.extraction.queue import queue_health

        def drained() -> bool:
            health = queue_health()
            return bool(health["pending"] == 0 and health["lag"] == 0)

        drain_s = wait_for(drained, timeout=DRAIN_TIMEOUT, poll=0.5)
        from bench.chaos_workers import memory_rows
        from memory.extraction.dead_letters import dead_letters

        messages = {(m["session_id"], m["text"]) for m in memory_rows() if m["type"] == "message"}
        parked = {m.content for d in dead_letters(limit=100_000) for t in d.turns for m in t.messages}
        lost = [t for t in turns if t.acknowledged and not _kept(t, messages=messages, parked=parked)]
    acked = sum(1 for t in turns if t.acknowledged)
    errors: dict[str, int] = {}
    for turn in turns:
        if not turn.acknowledged:
            errors[turn.error] = errors.get(turn.error, 0) + 1
    progress(f"  {acked} acknowledged turns checked, {len(lost)} lost; drained: {drain_s is not None}")
    return {
        "turns_sent": len(turns),
        "acknowledged_turns": acked,
        "acknowledged_turns_lost": len(lost),
        "lost_examples": [t.text for t in lost[:10]],
        "failed_turns_by_error": errors,
        "queue_drained_after": round(drain_s, 1) if drain_s is not None else None,
    }


def _kept(turn: Turn, *, messages: set[tuple[str, str]], parked: set[str]) -> bool:
    """In working memory, and queued (still pending or parked) or extracted (its message memory)."""
    from core.redis_client import get_redis
    from memory import keys, working

    said = [m for m in working.get_messages(session_id=turn.session_id) if m.role == "user"]
    if not any(m.content == turn.text for m in said):
        return False
    if (turn.session_id, turn.text) in messages or turn.text in parked:
        return True
    pending = get_redis().hvals(keys.extraction(turn.session_id, "turns"))
    return any(turn.text in raw.decode(errors="replace") for raw in pending)
