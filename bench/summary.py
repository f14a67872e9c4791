"""BENCHMARKS.md: assembled from the latest full results in bench/results/*.md."""

from __future__ import annotations

from pathlib import Path

from bench.env import RESULTS_DIR

# BENCHMARKS.md is assembled from the latest full results, in this order (locomo: `make eval`).
SECTIONS = ["engine", "api", "extraction", "chat_load", "inspector", "fuzz", "chaos", "locomo", "personas"]
BENCHMARKS_MD = RESULTS_DIR.parent.parent / "BENCHMARKS.md"
BENCHMARKS_INTRO = """# Benchmarks

Every number here comes from `make bench` (memory engine, API search over HTTP, extraction, chat load,
inspector) and
`make eval` (LoCoMo, raw-turn and end to end, and the persona suites), run on the machine named in
each section. This file is rebuilt
from `bench/results/*.md` at the end of `make bench` and of `make eval`; the JSON beside each holds
the raw numbers.
Latencies on this shared 2-core machine move with its load, which each section records.
"""


def write_benchmarks_md() -> Path:
    parts = [BENCHMARKS_INTRO]
    for name in SECTIONS:
        section = RESULTS_DIR / f"{name}.md"
        if section.exists():
            parts.append(section.read_text().strip() + "\n")
    BENCHMARKS_MD.write_text("\n".join(parts))
    return BENCHMARKS_MD
