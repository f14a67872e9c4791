"""Process handling for the chaos bench: start, SIGKILL and always clean up the product's processes.

Every wait has a timeout: a chaos run must end with numbers, never hang, and leave nothing running.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.env import BASE_DIR

STOP_TIMEOUT = 15.0


def spawn(args: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child in its own session (a kill of its group takes its children too), output added to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            args, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def sigkill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL, as an OOM killer or a power cut would: no handler, no cleanup."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT)


def stop(process: subprocess.Popen[bytes], *, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM (the process stops its own children in order), then SIGKILL of its whole group.

    The group is killed only while its leader is not reaped yet: after that its id may be reused.
    """
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (a /proc scan: no psutil in the project)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def redis_server_pid(port: int) -> int | None:
    """The redis-server serving `port`, found by its command line.

    redis-server rewrites its title to "<binary> 127.0.0.1:<port>", so match either that or `--port`.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        words = " ".join(command_line(int(entry.name))).split()
        if words and Path(words[0]).name == "redis-server" and _serves(words[1:], port):
            return int(entry.name)
    return None


def _serves(words: list[str], port: int) -> bool:
    return any(w.endswith(f":{port}") for w in words) or any(
        a == "--port" and b == str(port) for a, b in itertools.pairwise(words)
    )


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_leftovers(pids: set[int], *, markers: tuple[str, ...]) -> list[int]:
    """SIGKILL whatever of `pids` still runs (each by its id); returns those that had to be killed.

    A pid is only killed while its command line or environment still carries one of `markers`
    (the run's state folder, its ports): an id the system gave to someone else's process is left alone.
    """
    left = [pid for pid in sorted(pids) if running(pid) and _carries(pid, markers)]
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return left


def _carries(pid: int, markers: tuple[str, ...]) -> bool:
    try:
        seen = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return any(marker.encode() in seen for marker in markers)


def wait_for(condition: Callable[[], object], *, timeout: float, poll: float = 0.1) -> float | None:
    """Seconds until `condition()` held, or None when it did not within `timeout`."""
    started = time.monotonic()
    while True:
        if _holds(condition):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(poll)


def _holds(condition: Callable[[], object]) -> bool:
    try:
        return bool(condition())
    except Exception:  # a probe against a dying process may fail in any way: it just does not hold
        return False
