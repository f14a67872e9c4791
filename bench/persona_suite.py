"""`python -m bench.persona_suite [--suite dev] [--transport ws|inprocess]`: the persona suites.

Writes bench/results/personas.json (both suites, every run) unless --no-write; prints a summary and,
with --misses, what was not learned or not answered.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.env import prepare_environment


def _summary_line(graded: dict[str, Any]) -> str:
    return (
        f"{graded['suite']}: facts learned {graded['facts_learned']['percent']} % "
        f"({graded['facts_learned']['hits']}/{graded['facts_learned']['total']}), answered "
        f"{graded['questions_answered']['percent']} % ({graded['questions_answered']['hits']}/"
        f"{graded['questions_answered']['total']}), changes {graded['changes_applied']['percent']} %, "
        f"broad recall {graded['broad_questions_recall']['percent']} %"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.persona_suite", description=__doc__)
    parser.add_argument("--suite", action="append", help="suite name (default: every suite)")
    parser.add_argument("--transport", choices=["inprocess", "ws"], default="inprocess")
    parser.add_argument("--persona", action="append", help="only these persona ids")
    parser.add_argument("--misses", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the graded JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="engram-personas-") as tmp:
        prepare_environment(Path(tmp))
        from bench.env import private_redis
        from bench.persona_data import load_suite, suite_paths
        from bench.persona_grading import grade
        from bench.persona_inprocess import run_suite

        results = {}
        with private_redis(Path(tmp) / "redis"):
            for path in suite_paths():
                suite = load_suite(path)
                if args.suite and suite.name not in args.suite:
                    continue
                if args.persona:
                    suite = type(suite)(
                        suite.name,
                        suite.description,
                        tuple(p for p in suite.personas if p.id in args.persona),
                    )
                started = time.perf_counter()
                outcomes = run_suite(suite, progress=lambda _m: None)
                graded = grade(suite, outcomes)
                graded["seconds"] = round(time.perf_counter() - started, 1)
                results[suite.name] = graded
                print(_summary_line(graded), f"in {graded['seconds']} s", flush=True)
                if args.misses:
                    print(json.dumps(graded["misses"], indent=1))
                for kind, tallies in graded["by_kind"].items():
                    print(
                        f"  {kind:12} learned {tallies['learned']['percent']:5.1f}  "
                        f"answered {tallies['answered']['percent']:5.1f}"
                    )
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
