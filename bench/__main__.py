"""`python -m bench [--only NAME ...] [--quick]`: run benchmarks, write bench/results/NAME.{json,md}.

Each benchmark is a module listed in BENCHES with `run(args) -> dict` and `markdown(dict) -> str`.
A quick run writes NAME-quick.* so a smoke test never overwrites the real numbers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.env import RESULTS_DIR, prepare_environment
from bench.summary import write_benchmarks_md

# name -> module, run in this order by `make bench`.
BENCHES: dict[str, str] = {
    "engine": "bench.engine",
    "api": "bench.api",
    "extraction": "bench.extraction",
    "chat_load": "bench.chat_load",
    "inspector": "bench.inspector",
    "fuzz": "bench.fuzz",
    "chaos": "bench.chaos",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", action="append", choices=sorted(BENCHES), help="run only this bench")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in about a minute")
    parser.add_argument("--no-profile", action="store_true", help="skip the diagnosis passes (cProfile etc.)")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each bench, wait up to this long for the 1-minute load average to drop below 1",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where to write results")
    return parser.parse_args(argv)


def write_results(name: str, result: dict[str, Any], markdown: str, folder: Path, quick: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-quick" if quick else name
    (folder / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (folder / f"{stem}.md").write_text(markdown)
    print(f"wrote {folder / stem}.json and .md", flush=True)


def wait_for_idle(limit: float, threshold: float = 1.0) -> None:
    """Shared machines: other jobs' CPU use skews every latency; optionally wait them out."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        load = os.getloadavg()[0]
        if load < threshold:
            return
        print(f"waiting for the machine to go idle (1-min load {load:.2f})", flush=True)
        time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    failed = []
    # One throwaway state folder for the whole run (Django's dev secret, SQLite, Redis data).
    with tempfile.TemporaryDirectory(prefix="engram-bench-state-") as state:
        prepare_environment(Path(state))
        for name in args.only or list(BENCHES):
            module = importlib.import_module(BENCHES[name])
            print(f"== bench {name} ==", flush=True)
            wait_for_idle(args.wait_idle)
            result = module.run(args)
            write_results(name, result, module.markdown(result), args.results_dir, args.quick)
            if not result.get("all_pass", True):
                failed.append(name)
    if failed:
        print(f"targets missed in: {', '.join(failed)} (see bench/results/)", flush=True)
    if not args.quick and args.results_dir == RESULTS_DIR:
        print(f"wrote {write_benchmarks_md()}", flush=True)
    # Missing a performance target is a finding, not a crash: exit 0 so `make bench` still records it.
    return 0


if __name__ == "__main__":
    sys.exit(main())
