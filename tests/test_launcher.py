"""`make run` end to end: the launcher starts Redis, daphne and a worker, and Ctrl-C stops them all."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from core.embedded_redis import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            child = int(entry.name)
            found |= {child} | _descendants(child)
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback test URL
        return json.loads(response.read())


def _wait_for_health(url: str, process: subprocess.Popen, redis_port: int, timeout: float = 90) -> None:
    """Up means /healthz answers ok (public, details-free) and the worker's heartbeat is in Redis."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        assert process.poll() is None, f"launcher exited early with {process.returncode}"
        try:
            if _get_json(url) == {"status": "ok"} and redis.Redis(port=redis_port).hlen(
                "engram:workers:heartbeat"
            ):
                return
        except Exception as exc:
            last_error = exc
        time.sleep(0.3)
    raise AssertionError(f"no healthy /healthz and worker within {timeout}s: {last_error}")


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_engram"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_run_serves_pages_and_ctrl_c_stops_everything(tmp_path):
    redis_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "EMBEDDED_REDIS_PORT": str(redis_port),
        "HTTP_PORT": str(http_port),
        "ENGRAM_STATE_DIR": str(tmp_path / "state"),
        "DEBUG": "1",
        "WORKER_HEARTBEAT_SECONDS": "1",
        "SERVER_PROCESSES": "1",
    }
    env.pop("REDIS_URL", None)
    base = f"http://127.0.0.1:{http_port}"

    launcher = _start(env)
    try:
        _wait_for_health(f"{base}/healthz", launcher, redis_port)
        modules = {entry[b"name"] for entry in redis.Redis(port=redis_port).module_list()}
        assert {b"search", b"ReJSON"} <= modules, "the embedded Redis runs the Query Engine"
        with urllib.request.urlopen(f"{base}/", timeout=5) as response:  # noqa: S310
            home = response.read()
            assert b"Engram" in home and b"offline mode" in home
        with urllib.request.urlopen(f"{base}/static/vendor/htmx-2.0.11.min.js", timeout=5) as response:  # noqa: S310
            assert response.status == 200
        redis.Redis(port=redis_port).set("engram:survives", "yes")
        processes = _descendants(launcher.pid)
        assert len(processes) >= 3, "redis, daphne and the worker run under the launcher"
    finally:
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, output
    assert "Stopping Engram" in output
    time.sleep(0.2)
    assert not [pid for pid in processes if _running(pid)], "nothing is left running"
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=redis_port, socket_connect_timeout=0.3).ping()

    # A second run reuses the data.
    launcher = _start(env)
    try:
        _wait_for_health(f"{base}/healthz", launcher, redis_port)
        assert redis.Redis(port=redis_port).get("engram:survives") == b"yes"
    finally:
        launcher.send_signal(signal.SIGINT)
        launcher.communicate(timeout=60)
    assert launcher.returncode == 0


def _pids(path: Path) -> dict:
    return json.loads(path.read_text())


def _wait(predicate, what: str, process: subprocess.Popen, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, (
            f"launcher exited early with {process.returncode}: {process.communicate()[0]}"
        )
        with contextlib.suppress(Exception):
            value = predicate()
            if value:
                return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def _supervised_env(tmp_path: Path, *, limit: int, servers: int = 1) -> tuple[dict[str, str], int, int, Path]:
    redis_port, http_port = free_port(), free_port()
    pid_file = tmp_path / "pids.json"
    env = {
        **os.environ,
        "EMBEDDED_REDIS_PORT": str(redis_port),
        "HTTP_PORT": str(http_port),
        "ENGRAM_STATE_DIR": str(tmp_path / "state"),
        "DEBUG": "1",
        "WORKER_HEARTBEAT_SECONDS": "1",
        "LAUNCHER_MAX_RESTARTS_PER_MINUTE": str(limit),
        "LAUNCHER_PID_FILE": str(pid_file),
        "SERVER_PROCESSES": str(servers),
    }
    env.pop("REDIS_URL", None)
    return env, redis_port, http_port, pid_file


def test_a_killed_worker_and_a_killed_redis_are_started_again(tmp_path):
    env, redis_port, http_port, pid_file = _supervised_env(tmp_path, limit=5)
    health = f"http://127.0.0.1:{http_port}/healthz"
    launcher = _start(env)
    try:
        _wait_for_health(health, launcher, redis_port)
        first = _pids(pid_file)
        assert first["launcher"] == launcher.pid
        assert {first["redis"], first["worker"], first["daphne-1"]} <= _descendants(launcher.pid)

        os.kill(first["worker"], signal.SIGKILL)
        after_worker = _wait(
            lambda: (p := _pids(pid_file))["worker"] != first["worker"] and _running(p["worker"]) and p,
            "a new worker",
            launcher,
        )
        assert after_worker["restarts"]["worker"] == 1
        assert after_worker["daphne-1"] == first["daphne-1"] and after_worker["redis"] == first["redis"]

        client = redis.Redis(port=redis_port)
        client.set("engram:acknowledged", "kept")
        # Fsynced to the AOF (appendfsync everysec may postpone the write on a busy machine).
        assert client.execute_command("WAITAOF", 1, 0, 5000)[0] >= 1
        os.kill(first["redis"], signal.SIGKILL)
        after_redis = _wait(
            lambda: (p := _pids(pid_file))["redis"] != first["redis"] and _running(p["redis"]) and p,
            "a new redis-server",
            launcher,
        )
        assert after_redis["restarts"]["redis"] == 1
        assert after_redis["started_at"]["redis"] > first["started_at"]["redis"]
        assert redis.Redis(port=redis_port).get("engram:acknowledged") == b"kept", "same data dir, AOF on"
        back = time.time()
        _wait(
            lambda: (
                max(float(v) for v in redis.Redis(port=redis_port).hvals("engram:workers:heartbeat")) > back
            ),
            "a worker heartbeat after the Redis restart",
            launcher,
        )
        # daphne was not restarted: it reconnects by itself and answers ok again.
        _wait(lambda: _get_json(health) == {"status": "ok"}, "/healthz ok after the Redis restart", launcher)
        assert _pids(pid_file)["daphne-1"] == first["daphne-1"]
    finally:
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, output
    assert "worker exited (killed by SIGKILL); starting it again (restart 1 of at most 5 a minute)" in output
    assert "Redis exited (killed by SIGKILL); starting it again on port" in output
    assert not pid_file.exists(), "the pid file goes with the launcher"


def test_past_the_restart_limit_everything_stops_with_a_message(tmp_path):
    env, redis_port, http_port, pid_file = _supervised_env(tmp_path, limit=1)
    launcher = _start(env)
    try:
        _wait_for_health(f"http://127.0.0.1:{http_port}/healthz", launcher, redis_port)
        first = _pids(pid_file)
        os.kill(first["worker"], signal.SIGKILL)
        second = _wait(
            lambda: (p := _pids(pid_file))["worker"] != first["worker"] and _running(p["worker"]) and p,
            "a new worker",
            launcher,
        )
        processes = _descendants(launcher.pid)
        os.kill(second["worker"], signal.SIGKILL)
        output, _ = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGINT)
            launcher.communicate(timeout=60)
    assert launcher.returncode == 1
    assert "worker stopped 2 times within a minute (the limit is 1 restarts a minute" in output
    assert "stopping everything" in output
    time.sleep(0.2)
    assert not [pid for pid in processes if _running(pid)], "daphne and Redis were stopped too"
