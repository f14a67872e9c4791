"""float32 vs float16 vectors on LoCoMo, same code, same data, side by side (issue 17, part 1).

`python -m bench.dtype_recall raw|e2e --dtype float32|float16 [--data PATH] [--out FILE]`: LoCoMo
loaded into a fresh Redis with that dtype (raw turns: every turn a memory, the headline hybrid run;
e2e: the offline rules through the chat's queue and worker, questions through build_prompt), and its
recall@5/10/25 as JSON. Run it once per dtype on the same code and compare.

Why not convert one loaded Redis and ask again: an index rebuilt by a background scan gives other
BM25 scores than one filled write by write (measured: 121 of 199 top-10 lists of one conversation
changed after a plain same-dtype `memory_index rebuild`), which would hide the dtype's effect.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.env import prepare_environment
from bench.eval import DATA


def _say(message: str) -> None:
    print(f"[dtype] {message}", flush=True)


def _fresh_caches() -> None:
    """Both passes start alike and run alike: the per-scope word counts decide which words BM25
    drops, and they are cached for 60 s, so where the cache expires (wall time: the passes run at
    different speeds) would change results for reasons other than the dtype. Here they never expire
    within a pass and both passes start empty."""
    from memory import term_stats

    term_stats.TERM_COUNTS_TTL_SECONDS = 1e9
    with term_stats._term_counts_lock:
        term_stats._term_counts.clear()


def raw(data: Path) -> dict[str, Any]:
    from bench import locomo

    conversations = locomo.load_locomo(data)
    with locomo.private_redis():
        dia_ids = locomo.load_into_engine(conversations)
        vectors = locomo.embed_questions(conversations)
        _fresh_caches()
        run = locomo.run_questions(
            locomo.DEFAULT_RUNS[0], conversations, dia_ids, question_vectors=vectors, embed_inside=False
        )
        return locomo.summarise_recall(run.questions)


def e2e(data: Path, work: Path) -> dict[str, Any]:
    from bench import locomo, locomo_e2e
    from bench.env import private_redis

    raws = json.loads(data.read_text())
    conversations = [locomo.parse_conversation(r) for r in raws]
    with private_redis(work / "redis-e2e"), locomo_e2e._offline():
        locomo_e2e.ingest(conversations, raws, progress=None)
        _fresh_caches()
        summary = locomo_e2e.summarise(locomo_e2e.ask(conversations, progress=None))
        return {k: v for k, v in summary.items() if k.startswith("recall_at")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dtype_recall", description=__doc__)
    parser.add_argument("part", choices=["raw", "e2e"])
    parser.add_argument("--dtype", choices=["float32", "float16"], required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    # Read when Django starts: the whole run stores and queries this dtype.
    os.environ["VECTOR_DTYPE"] = args.dtype
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="engram-dtype-") as tmp:
        prepare_environment(Path(tmp))
        result = raw(args.data) if args.part == "raw" else e2e(args.data, Path(tmp))
    seconds = round(time.perf_counter() - started, 1)
    result = {"part": args.part, "dtype": args.dtype, **result, "seconds": seconds}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
