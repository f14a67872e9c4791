"""`make run`: the embedded Redis, migrations, SERVER_PROCESSES daphne processes and one worker,
stopped together on Ctrl-C.

The daphne processes (one per core by default) serve one port: the launcher binds it and hands each
process a listening socket of its own (core/listeners.py), so the kernel spreads connections over
them; the channel layer carries frames between processes (a chat open in two tabs, the live feed).

The launcher supervises what it started: a worker or a daphne that exits is started again (on the
same socket: connections arriving meanwhile wait in its backlog), and so is
the embedded redis-server (same port and data dir: the AOF brings the data back; the other
processes reconnect by themselves). Each process may be restarted at most
LAUNCHER_MAX_RESTARTS_PER_MINUTE times a minute; past that something is broken for good, and the
launcher stops everything with a message instead of restarting forever.

The pids of everything running are in LAUNCHER_PID_FILE (JSON: pids by name: "launcher",
"redis", "worker", "daphne-1" … "daphne-N"; restart counts and when each was last started;
rewritten at each restart, removed on exit), so an operator or the chaos bench can find them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from django.conf import settings
from django.core.management import call_command

from core.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from core.listeners import PortInUse, balanced, bind_again, serve_args, server_sockets
from core.redis_check import check_redis
from core.redis_client import get_redis

RESTART_WINDOW_SECONDS = 60.0
POLL_SECONDS = 0.25


class Stop(Exception):
    """Raised inside the wait loop when a stop signal arrives."""


class TooManyRestarts(Exception):
    """A process exited more often than the restart limit allows."""


@dataclass
class RestartBudget:
    """Restarts of one process within the last minute."""

    limit: int
    times: deque[float] = field(default_factory=deque)
    total: int = 0

    def spend(self, name: str, now: float) -> int:
        """Count one restart; TooManyRestarts when it would pass the limit."""
        while self.times and now - self.times[0] > RESTART_WINDOW_SECONDS:
            self.times.popleft()
        if len(self.times) >= self.limit:
            raise TooManyRestarts(
                f"{name} stopped {len(self.times) + 1} times within a minute "
                f"(the limit is {self.limit} restarts a minute, LAUNCHER_MAX_RESTARTS_PER_MINUTE)"
            )
        self.times.append(now)
        self.total += 1
        return len(self.times)


@dataclass
class Child:
    name: str
    args: list[str]
    budget: RestartBudget
    process: subprocess.Popen[bytes] | None = None
    pass_fds: tuple[int, ...] = ()  # a daphne's listening socket, kept open by the launcher

    started_at: float = 0.0

    def start(self) -> None:
        # Own session: Ctrl-C reaches only the launcher, which then stops everything in order.
        self.process = subprocess.Popen(self.args, start_new_session=True, pass_fds=self.pass_fds)
        self.started_at = time.time()

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def stop_all(children: list[Child], *, timeout: float = 15.0) -> None:
    """SIGTERM to every running child at once, then wait for them together; whatever is still
    running at the deadline is killed. One by one, N server processes took N times as long
    (a daphne with the model loaded needs ~4 s to exit)."""
    running = [child for child in children if child.running()]
    for child in running:
        assert child.process is not None
        child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in running:
        assert child.process is not None
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(timeout=5)


@dataclass
class Supervisor:
    children: list[Child]
    redis: EmbeddedRedis | None
    redis_budget: RestartBudget
    pid_file: Path
    redis_started_at: float = field(default_factory=time.time)

    def start_children(self) -> None:
        for child in self.children:
            child.start()
        self.write_pids()

    def stop_children(self) -> None:
        stop_all(self.children)

    def check(self) -> None:
        """One round: start again whatever exited, Redis first (the others need it)."""
        now = time.monotonic()
        if self.redis is not None and (code := self.redis.exit_code()) is not None:
            self._restart_redis(code, now)
        for child in self.children:
            code = child.exit_code()
            if code is None:
                continue
            count = child.budget.spend(child.name, now)
            _say(
                f"{child.name} exited ({_describe(code)}); starting it again ({_count(count, child.budget)})."
            )
            child.start()
            self.write_pids()

    def _restart_redis(self, code: int, now: float) -> None:
        assert self.redis is not None
        while True:
            count = self.redis_budget.spend("Redis", now)
            _say(
                f"Redis exited ({_describe(code)}); starting it again on port {self.redis.port} with the "
                f"same data ({self.redis.data_dir}) ({_count(count, self.redis_budget)})."
            )
            try:
                self.redis.restart()
            except EmbeddedRedisError as exc:
                _say(f"Redis did not start again: {exc}")
                time.sleep(1)
                now = time.monotonic()
                continue
            self.redis_started_at = time.time()
            _say(
                f"Redis answers again on port {self.redis.port}; the other processes reconnect by themselves."
            )
            self.write_pids()
            return

    def pids(self) -> dict[str, object]:
        return {
            "launcher": os.getpid(),
            "redis": self.redis.pid if self.redis is not None else None,
            **{child.name: child.process.pid if child.process else None for child in self.children},
            "restarts": {
                **({"redis": self.redis_budget.total} if self.redis is not None else {}),
                **{child.name: child.budget.total for child in self.children},
            },
            # Wall-clock time each one was last started (a Redis restart's is once it answers).
            "started_at": {
                **({"redis": round(self.redis_started_at, 3)} if self.redis is not None else {}),
                **{child.name: round(child.started_at, 3) for child in self.children},
            },
        }

    def write_pids(self) -> None:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.pid_file.with_suffix(".tmp")
        partial.write_text(json.dumps(self.pids()))
        partial.replace(self.pid_file)  # a reader never sees half a file

    def remove_pids(self) -> None:
        with suppress(FileNotFoundError):
            self.pid_file.unlink()


def _describe(code: int) -> str:
    if code < 0:
        with suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _count(count: int, budget: RestartBudget) -> str:
    return f"restart {count} of at most {budget.limit} a minute"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class ServerChild(Child):
    """A daphne (core/serve.py: it closes too-large WebSocket messages with 1009) on a socket the
    launcher bound. Where each has its own socket, the launcher lets go of its copy once the
    process runs: the socket dies with the process, the kernel sends new connections to the
    others meanwhile, and the restarted process gets a new socket on the same address."""

    sock: socket.socket | None = None
    family: socket.AddressFamily = socket.AF_INET
    address: tuple[str, int] = ("", 0)

    def start(self) -> None:
        if self.sock is None:  # a restart: the old socket went with the old process
            self.sock = bind_again(family=self.family, address=self.address)
        self.args = serve_args(self.sock)
        self.pass_fds = (self.sock.fileno(),)
        super().start()
        if balanced():
            self.sock.close()
            self.sock = None


def server_children(sockets: list[socket.socket], limit: int) -> list[Child]:
    """One supervised daphne per listening socket."""
    return [
        ServerChild(
            f"daphne-{n}",
            [],
            RestartBudget(limit),
            sock=sock,
            family=sock.family,
            address=sock.getsockname()[:2],
        )
        for n, sock in enumerate(sockets, start=1)
    ]


def run(*, out: object = sys.stdout) -> int:
    def raise_stop(signum: int, frame: FrameType | None) -> None:
        raise Stop

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_stop)

    limit: int = settings.LAUNCHER_MAX_RESTARTS_PER_MINUTE
    with ExitStack() as stack:
        try:
            server: EmbeddedRedis | None = None
            if settings.REDIS_EMBEDDED:
                server = EmbeddedRedis(port=settings.EMBEDDED_REDIS_PORT, data_dir=settings.REDIS_DATA_DIR)
                server.start()
                stack.callback(server.stop)
                print(f"Redis      embedded on {server.url} (data: {server.data_dir})", flush=True)
            else:
                print("Redis      REDIS_URL (external)", flush=True)
            check_redis(get_redis(), settings.REDIS_URL)
            call_command("migrate", interactive=False, verbosity=0)
            call_command("migrate_keys", verbosity=1)  # Redis keys of an older layout (memory.key_layout)
            if not settings.DEBUG:
                call_command("collectstatic", interactive=False, verbosity=0)
            sockets = server_sockets(
                host=settings.HTTP_HOST, port=settings.HTTP_PORT, count=settings.SERVER_PROCESSES
            )
            if not balanced():
                stack.callback(sockets[0].close)  # the one socket every process shares
            supervisor = Supervisor(
                children=[
                    Child("worker", [sys.executable, "manage.py", "memory_worker"], RestartBudget(limit)),
                    *server_children(sockets, limit),
                ],
                redis=server,
                redis_budget=RestartBudget(limit),
                pid_file=settings.LAUNCHER_PID_FILE,
            )
            stack.callback(supervisor.remove_pids)
            stack.callback(supervisor.stop_children)
            supervisor.start_children()
            url = f"http://{settings.HTTP_HOST}:{settings.HTTP_PORT}/"
            print(
                f"Engram     {url}  ({len(sockets)} server process{'es' if len(sockets) > 1 else ''}; "
                f"status for staff: {url}inspector/status/) — Ctrl-C stops everything",
                flush=True,
            )
            while True:
                supervisor.check()
                time.sleep(POLL_SECONDS)
        except EmbeddedRedisError as exc:
            _say(str(exc))  # plain words already (port taken, binary missing, exited at start)
            _ignore_stop_signals()
            return 1
        except PortInUse as exc:
            _say(f"{exc}. Stop the other server, or set HTTP_PORT to a free port.")
            _ignore_stop_signals()
            return 1
        except TooManyRestarts as exc:
            _say(f"{exc}; stopping everything. Its output above says why; fix that and run `make run` again.")
            _ignore_stop_signals()
            return 1
        except Stop:
            print("\nStopping Engram…", flush=True)
            _ignore_stop_signals()
            return 0
    return 0


def _ignore_stop_signals() -> None:
    # A second Ctrl-C while stopping must not leave half the processes running.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
