"""The chat load bench's sampled profile: py-spy (pinned in the venv) on one server process
through a load round, summarised by where the samples fall.

py-spy attaches to another process with ptrace: as root, or with CAP_SYS_PTRACE (a container may
need `--cap-add SYS_PTRACE`). `--nonblocking` reads the process without pausing it, so the profile
does not slow the run it measures; idle threads are left out, so the samples are CPU time.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.env import Progress

RATE_HZ = 100
# Where a sample's time goes, by the first matching frame from the leaf up (file paths).
BUCKETS = (
    ("embedding (torch, sentence-transformers)", ("torch/", "sentence_transformers/", "transformers/")),
    ("LLM stream: openai client, httpx, pydantic", ("openai/", "httpx/", "httpcore/", "pydantic", "h11/")),
    ("Redis clients (redis-py, channels-redis)", ("redis/", "channels_redis/", "hiredis", "msgpack")),
    ("WebSocket / HTTP server (Twisted, autobahn, daphne)", ("twisted/", "autobahn/", "daphne/", "txaio/")),
    ("Channels and asgiref (consumer dispatch, sync_to_async)", ("channels/", "asgiref/")),
    ("Django (sessions, ORM, auth)", ("django/",)),
    ("asyncio event loop and threads", ("asyncio/", "concurrent/", "threading.py", "selectors.py")),
    ("JSON", ("json/",)),
    ("Engram code", ("/memory/", "/chat/", "/core/", "/config/", "/inspector/")),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@contextmanager
def py_spy(pid: int | None, out: Path, progress: Progress) -> Iterator[Path | None]:
    """Sample `pid` while the block runs; yields where the collapsed stacks will be (None when
    `pid` is None or py-spy cannot attach: the run goes on unprofiled)."""
    if pid is None:
        yield None
        return
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate",
               str(RATE_HZ), "--nonblocking", "--format", "raw", "--output", str(out)]  # fmt: skip
    recorder = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    progress(f"py-spy sampling daphne pid {pid} at {RATE_HZ} Hz")
    try:
        yield out
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            output, _ = recorder.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()
            output, _ = recorder.communicate()
        if not out.exists():
            progress(f"py-spy wrote no profile: {output.decode(errors='replace')[-300:]}")


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function, file) root first."""
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw.strip())
        frames.append((match["function"], match["file"]) if match else (raw.strip(), ""))
    return frames


def _bucket(frames: list[tuple[str, str]]) -> str:
    for _function, file in reversed(frames):
        for name, markers in BUCKETS:
            if any(marker in file for marker in markers):
                return name
    return "other"


def summarise_profile(path: Path | None, *, top: int = 15) -> dict[str, Any]:
    """Samples by bucket (the leaf's library), the top functions by own and by total samples."""
    if path is None or not path.exists():
        return {"samples": 0, "note": "no profile (py-spy did not run or could not attach)"}
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = _frames(stack)
        names = [f"{function} ({Path(file).name})" for function, file in frames]
        own[names[-1]] += count
        for name in set(names):
            total[name] += count
        buckets[_bucket(frames)] += count

    def share(counter: Counter[str], n: int) -> list[dict[str, Any]]:
        return [
            {"name": name, "samples": c, "share": round(c / samples, 3)} for name, c in counter.most_common(n)
        ]

    return {
        "samples": samples,
        "rate_hz": RATE_HZ,
        "buckets": share(buckets, len(BUCKETS) + 1),
        "top_own": share(own, top),
        "top_total": share(total, top),
    }
