"""What every benchmark needs: Django, a private embedded Redis, machine facts, progress output."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.machine import cpu_model, ram_gb

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def prepare_environment(state_dir: Path) -> None:
    """Environment for a bench process; must run before Django's settings are imported.

    ENGRAM_STATE_DIR is forced to a throwaway folder: a bench must never write into the user's
    `.state/` (the dev secret key and SQLite would otherwise land there).
    """
    os.environ["ENGRAM_STATE_DIR"] = str(state_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # `make bench` points tiktoken at the shared cache; do the same for a bare `python -m bench`.
    tiktoken_dir = (BASE_DIR / ".." / "shared" / "data" / "tiktoken").resolve()
    if tiktoken_dir.is_dir():
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(tiktoken_dir))
    import django

    django.setup()


@contextmanager
def private_redis(data_dir: Path) -> Iterator[str]:
    """Start an embedded Redis on a free port and point the whole product at it; always stop it."""
    from core.embedded_redis import EmbeddedRedis, free_port
    from core.redis_client import pointed_at

    # The index-ensured marker is per Redis URL, so a fresh server gets its index created.
    with (
        EmbeddedRedis(port=free_port(), data_dir=data_dir) as server,
        pointed_at(server.url, channel_prefix="bench:asgi"),
    ):
        yield server.url


@dataclass
class Progress:
    """Timestamped progress lines; a full run takes minutes, so say what is happening."""

    name: str
    started: float = field(default_factory=time.perf_counter)
    # (seconds since start, 1-minute load average, message): kept in the results to judge noise.
    log: list[tuple[float, float, str]] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{self.name} {elapsed:7.1f}s] {message}", flush=True)
        load = load_average()
        self.log.append((round(elapsed, 1), load[0] if load else -1.0, message))

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=BASE_DIR, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def load_average() -> list[float]:
    """Other processes on a 2-core box skew every number; record how busy it was."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count() or 0,
        "ram_gb": ram_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        # Others edit the engine while benches run: record exactly which tracked files differed.
        "git_modified": _git("status", "--porcelain", "--untracked-files=no").splitlines(),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "argv": sys.argv[1:],
    }


def start_result(name: str, *, quick: bool, config: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """The common head of every bench's result, with a warning when the machine is already busy."""
    result: dict[str, Any] = {
        "bench": name,
        "quick": quick,
        "config": config,
        "machine": machine_info(),
        "load_average_start": load_average(),
    }
    busy = load_average()[:1]
    if busy and busy[0] > 0.5:
        progress(f"warning: 1-minute load average is {busy[0]} at the start; other processes skew timings")
    return result


def machine_line(result: dict[str, Any]) -> str:
    """The line under each results heading: the machine, versions, commit and load."""
    machine = result["machine"]
    versions = result.get("versions", {})
    dirty = " (dirty tree)" if machine["git_dirty"] else ""
    quick = " · **quick run**" if result["quick"] else ""
    return (
        f"{machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM · Python "
        f"{machine['python']} · Redis {versions.get('redis', '?')} + RediSearch {versions.get('search', '?')}"
        f" · {machine['date']} · commit {machine['git_commit']}{dirty} · 1/5/15-min load average "
        f"{result['load_average_start']} at start, {result['load_average_end']} at end{quick}"
    )
