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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


@contextmanager
def model_server(suites: Sequence[Any], *, enabled: bool) -> Iterator[str]:
    """The scripted model's URL, or "" for offline mode."""
    if not enabled:
        yield ""
        return
    from bench.persona_model import responder
    from devtools.llm_server import LLMServer

    with LLMServer(default_reply=responder(suites)) as server:
        yield server.base_url


@contextmanager
def pointed_at_model(llm_url: str) -> Iterator[None]:
    """This process's product code talks to `llm_url` (offline when empty)."""
    from django.test import override_settings

    from core import llm as core_llm

    with override_settings(OPENAI_BASE_URL=llm_url, OPENAI_API_KEY="persona-key" if llm_url else ""):
        core_llm._llms.clear()
        try:
            yield
        finally:
            core_llm._llms.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.persona_suite", description=__doc__)
    parser.add_argument("--suite", action="append", help="suite name (default: every suite)")
    parser.add_argument("--transport", choices=["inprocess", "ws"], default="inprocess")
    parser.add_argument("--persona", action="append", help="only these persona ids")
    parser.add_argument("--model", action="store_true", help="the scripted model instead of offline mode")
    parser.add_argument("--misses", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the graded JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="engram-personas-") as tmp:
        prepare_environment(Path(tmp))
        from bench.env import private_redis
        from bench.persona_data import Suite, load_suite, suite_paths
        from bench.persona_grading import grade

        suites = []
        for path in suite_paths():
            suite = load_suite(path)
            if args.suite and suite.name not in args.suite:
                continue
            if args.persona:
                suite = Suite(
                    suite.name, suite.description, tuple(p for p in suite.personas if p.id in args.persona)
                )
            suites.append(suite)
        results = {}
        with (
            private_redis(Path(tmp) / "redis") as redis_url,
            model_server(suites, enabled=args.model) as llm_url,
        ):
            for suite in suites:
                started = time.perf_counter()
                if args.transport == "ws":
                    from bench import persona_ws

                    with persona_ws.servers(
                        redis_url=redis_url, work_dir=Path(tmp), llm_url=llm_url
                    ) as servers:
                        outcomes = persona_ws.run_suite(suite, servers, progress=lambda _m: None)
                else:
                    from bench.persona_inprocess import run_suite

                    with pointed_at_model(llm_url):
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
                if graded["turn_errors"]:
                    print("  turn errors:", graded["turn_errors"][:5])
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
