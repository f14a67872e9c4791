"""`make run`: the embedded Redis, migrations, daphne and one worker, stopped together on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from types import FrameType

from django.conf import settings
from django.core.management import call_command

from core.embedded_redis import EmbeddedRedis, check_query_engine
from core.redis_client import get_redis


class Stop(Exception):
    """Raised inside the wait loop when a stop signal arrives."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _spawn(name: str, args: list[str]) -> Child:
    # Own session: Ctrl-C reaches only the launcher, which then stops everything in order.
    return Child(name, subprocess.Popen(args, start_new_session=True))


def _stop_child(child: Child, timeout: float = 15.0) -> None:
    if child.process.poll() is not None:
        return
    child.process.send_signal(signal.SIGTERM)
    try:
        child.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.process.kill()
        child.process.wait(timeout=5)


def _stop_children(children: list[Child]) -> None:
    for child in reversed(children):
        _stop_child(child)


def run(*, out: object = sys.stdout) -> int:
    def raise_stop(signum: int, frame: FrameType | None) -> None:
        raise Stop

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_stop)

    children: list[Child] = []
    with ExitStack() as stack:
        try:
            if settings.REDIS_EMBEDDED:
                server = EmbeddedRedis(port=settings.EMBEDDED_REDIS_PORT, data_dir=settings.REDIS_DATA_DIR)
                server.start()
                stack.callback(server.stop)
                print(f"Redis      embedded on {server.url} (data: {server.data_dir})", flush=True)
            else:
                print("Redis      REDIS_URL (external)", flush=True)
            check_query_engine(get_redis(), settings.REDIS_URL)
            call_command("migrate", interactive=False, verbosity=0)
            if not settings.DEBUG:
                call_command("collectstatic", interactive=False, verbosity=0)
            stack.callback(_stop_children, children)
            children.append(_spawn("worker", [sys.executable, "manage.py", "memory_worker"]))
            children.append(
                _spawn(
                    "daphne",
                    [
                        sys.executable,
                        "-m",
                        "core.serve",  # daphne, closing too-large WebSocket messages with 1009
                        "-b",
                        settings.HTTP_HOST,
                        "-p",
                        str(settings.HTTP_PORT),
                        "config.asgi:application",
                    ],
                )
            )
            url = f"http://{settings.HTTP_HOST}:{settings.HTTP_PORT}/"
            print(
                f"Engram     {url}  (status for staff: {url}inspector/status/) — Ctrl-C stops everything",
                flush=True,
            )
            while True:
                for child in children:
                    code = child.process.poll()
                    if code is not None:
                        print(f"{child.name} exited with code {code}; stopping.", file=sys.stderr, flush=True)
                        return 1
                time.sleep(0.5)
        except Stop:
            print("\nStopping Engram…", flush=True)
            # A second Ctrl-C while stopping must not leave half the processes running.
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            return 0
    return 0
