"""`make eval` = `python -m bench.eval`: how well Engram remembers, measured on the product it ships.

1. LoCoMo, raw-turn retrieval (bench/locomo.py): every dialog turn stored as a memory, each question
   one search. A retrieval baseline, comparable with the LoCoMo paper's retrievers.
2. LoCoMo end to end (bench/locomo_e2e.py): the turns go through the chat's queue and the worker
   (offline rules, then the scripted model), questions through `build_prompt`.
3. The persona suites (bench/persona_*.py): people telling Engram about themselves over the chat
   WebSocket of a real server, asked later in a new chat; offline and with the scripted model.
4. Split-half checks (bench/tuning.py) of every knob tuned on these data sets.

Each part runs in its own throw-away embedded Redis. Writes bench/results/locomo.{json,md} and
personas.{json,md} and rebuilds BENCHMARKS.md. `--quick` runs a small subset (a smoke test; the
results go to *-quick files).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.env import RESULTS_DIR, prepare_environment

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "locomo" / "locomo10.json"
# SearchParams fields (and the offline reply's share, bench.tuning.OFFLINE_SHARE) checked split-half.
LOCOMO_KNOBS = ("session_weight", "relative_threshold", "threshold", "topic_weight")
PERSONA_KNOBS = (
    "threshold",
    "relative_threshold",
    "offline.shown_share_of_best",
    "session_weight",
    "vector_weight",
    "topic_weight",
)


def _say(message: str) -> None:
    print(f"[eval] {message}", flush=True)


def _subset(data: Path, conversations: int, folder: Path) -> Path:
    raw = json.loads(data.read_text())[:conversations]
    path = folder / "locomo-subset.json"
    path.write_text(json.dumps(raw))
    return path


def raw_turns(data: Path) -> dict[str, Any]:
    from bench import locomo

    with locomo.private_redis():
        evaluation = locomo.evaluate(data, progress_factory=locomo.Progress)
    report = evaluation.report
    # Each run on conversations 1-5 and 6-10: what a weight adds must hold on both halves.
    first = {c.sample_id for c in evaluation.conversations[: len(evaluation.conversations) // 2]}
    report["split_halves_recall_at_10"] = {
        run.spec.name: {
            half: locomo.summarise_recall(
                [q for q in run.questions if (q.sample_id in first) == (half == "first_half")]
            )["recall_at_10"]
            for half in ("first_half", "second_half")
        }
        for run in evaluation.runs
    }
    return report


def end_to_end(data: Path, extractor: str, work: Path, *, sweeps: Sequence[str]) -> dict[str, Any]:
    from bench import locomo, locomo_e2e
    from bench.env import private_redis

    with private_redis(work / f"redis-e2e-{extractor}"):
        return locomo_e2e.run(data, extractor=extractor, progress_factory=locomo.Progress, sweep_knobs=sweeps)


def personas(work: Path, *, quick: bool) -> dict[str, Any]:
    from bench import persona_ws
    from bench.env import private_redis
    from bench.persona_data import Suite, load_suite, suite_paths
    from bench.persona_grading import grade
    from bench.persona_suite import model_server
    from bench.tuning import persona_sweeps

    suites = [load_suite(p) for p in suite_paths()]
    if quick:
        suites = [Suite(s.name, s.description, s.personas[:4]) for s in suites]
    sizes = {
        s.name: {"personas": len(s.personas), "facts": len(s.facts), "questions": len(s.questions)}
        for s in suites
    }
    out: dict[str, Any] = {"suites": sizes}
    for mode in ("offline", "model"):
        with (
            private_redis(work / f"redis-personas-{mode}") as redis_url,
            model_server(suites, enabled=mode == "model") as llm_url,
            persona_ws.servers(
                redis_url=redis_url, work_dir=work / f"servers-{mode}", llm_url=llm_url
            ) as servers,
        ):
            for suite in suites:
                started = time.perf_counter()
                graded = grade(suite, persona_ws.run_suite(suite, servers, progress=_say))
                graded["seconds"] = round(time.perf_counter() - started, 1)
                out.setdefault(mode, {})[suite.name] = graded
                _say(f"personas {mode} {suite.name}: learned {graded['facts_learned']['percent']} %, "
                     f"answered {graded['questions_answered']['percent']} %")  # fmt: skip
    with private_redis(work / "redis-persona-sweeps"):
        dev = next(s for s in suites if s.name == "dev")
        out["split_half"] = persona_sweeps(dev, [] if quick else PERSONA_KNOBS)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.eval", description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA, help="path to locomo10.json")
    parser.add_argument("--quick", action="store_true", help="2 conversations, 4 personas per suite")
    parser.add_argument("--only", choices=["locomo", "personas"], help="run one half of the evaluation")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(
            f"LoCoMo data not found at {args.data}: expected ../shared/data/locomo/locomo10.json next to "
            "the project (see ../shared/data/README.md), or pass --data PATH."
        )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="engram-eval-") as tmp:
        work = Path(tmp)
        prepare_environment(work)
        from bench.eval_report import write_locomo, write_personas
        from bench.summary import write_benchmarks_md

        data = _subset(args.data, 2, work) if args.quick else args.data.resolve()
        suffix = "-quick" if args.quick else ""
        if args.only in (None, "locomo"):
            _say("LoCoMo, raw-turn retrieval")
            report = raw_turns(data)
            _say("LoCoMo end to end, offline rules")
            report["end_to_end_rules"] = end_to_end(
                data, "rules", work, sweeps=() if args.quick else LOCOMO_KNOBS
            )
            _say("LoCoMo end to end, scripted model")
            report["end_to_end_model"] = end_to_end(data, "model", work, sweeps=())
            report["eval_seconds"] = round(time.perf_counter() - started, 1)
            _say(f"wrote {', '.join(str(p) for p in write_locomo(report, args.results_dir, suffix))}")
        if args.only in (None, "personas"):
            _say("persona suites over the chat WebSocket")
            result = personas(work, quick=args.quick)
            _say(f"wrote {', '.join(str(p) for p in write_personas(result, args.results_dir, suffix))}")
        if not args.quick and args.results_dir.resolve() == RESULTS_DIR.resolve():
            _say(f"wrote {write_benchmarks_md()}")
    _say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
