"""Split-half checks for the knobs tuned on the persona dev suite and LoCoMo.

Every tuned value is compared with its neighbours on both halves of each data set: a value is kept
only when it is not worse than the others on either half (no weight that helps one half and hurts
the other). Learning (extraction) happens once per data set; only the questions are asked again
under each setting, so a sweep costs seconds per value.

`python -m bench.tuning` prints the tables; `make eval` stores them in bench/results/personas.json
and locomo.json.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

# knob -> the values tried (the shipped one among them). "offline.X" is a constant of chat/offline.py,
# anything else a setting.
SWEEPS: dict[str, tuple[float, ...]] = {
    "RETRIEVAL_THRESHOLD": (0.05, 0.1, 0.15, 0.2),
    "RETRIEVAL_RELATIVE_THRESHOLD": (0.3, 0.5, 0.7),
    "offline.SHOWN_SHARE_OF_BEST": (0.3, 0.5, 0.6, 0.75),
    "RETRIEVAL_SESSION_WEIGHT": (0.0, 0.5, 1.5),
    "HYBRID_VECTOR_WEIGHT": (0.3, 0.4, 0.5, 0.6),
    "RETRIEVAL_TOPIC_WEIGHT": (0.0, 0.1, 0.2, 0.3),
}


@contextmanager
def applied(knob: str, value: float) -> Iterator[None]:
    from django.test import override_settings

    import chat.offline
    from memory import term_stats

    term_stats.forget_term_counts()
    if knob.startswith("offline."):
        with mock.patch.object(chat.offline, knob.removeprefix("offline."), value):
            yield
    else:
        extra = {"HYBRID_KEYWORD_WEIGHT": round(1.0 - value, 3)} if knob == "HYBRID_VECTOR_WEIGHT" else {}
        with override_settings(**{knob: value, **extra}):
            yield


def shipped(knob: str) -> float:
    from django.conf import settings

    import chat.offline

    if knob.startswith("offline."):
        return float(getattr(chat.offline, knob.removeprefix("offline.")))
    return float(getattr(settings, knob))


def verdict(rows: Mapping[float, Mapping[str, float]], chosen: float, *, margin: float) -> str:
    """ "holds" when the shipped value is within `margin` points (one question's worth: a smaller
    difference is noise) of the best value on each half."""
    for half in ("first_half", "second_half"):
        best = max(row[half] for row in rows.values())
        if rows[chosen][half] < best - margin:
            return f"worse than the best on the {half.replace('_', ' ')} ({rows[chosen][half]} < {best})"
    return "holds on both halves"


def sweep(measure: Callable[[], dict[str, float]], knobs: Sequence[str], *, margin: float) -> dict[str, Any]:
    """For each knob and value: the metric on each half (`measure` returns first_half/second_half)."""
    out: dict[str, Any] = {}
    for knob in knobs:
        rows: dict[float, dict[str, float]] = {}
        for value in SWEEPS[knob]:
            with applied(knob, value):
                rows[value] = measure()
        chosen = shipped(knob)
        if chosen not in rows:
            with applied(knob, chosen):
                rows[chosen] = measure()
        out[knob] = {"shipped": chosen, "values": {str(v): r for v, r in sorted(rows.items())},
                     "verdict": verdict(rows, chosen, margin=margin)}  # fmt: skip
    return out


# --- persona suite --------------------------------------------------------------------------------


def persona_measure(suite: Any) -> Callable[[], dict[str, float]]:
    """Offline questions answered (%) on the first and second half of the suite's personas."""
    from bench import persona_inprocess as inprocess
    from bench.persona_data import Suite
    from bench.persona_grading import PersonaOutcome, grade

    half = len(suite.personas) // 2
    parts = {"first_half": suite.personas[:half], "second_half": suite.personas[half:]}

    def measure() -> dict[str, float]:
        scores = {}
        for name, personas in parts.items():
            outcomes = []
            for persona in personas:
                answers, broad, facts = inprocess.ask(suite, persona, answer_text=inprocess.offline_answer)
                outcomes.append(PersonaOutcome(persona, facts, answers, broad, []))
            scores[name] = grade(Suite(suite.name, "", tuple(personas)), outcomes)["questions_answered"][
                "percent"
            ]
        return scores

    return measure


def persona_sweeps(suite: Any, knobs: Sequence[str]) -> dict[str, Any]:
    """Learn the suite once (offline), then sweep the knobs on its questions."""
    from bench import persona_inprocess as inprocess

    for persona in suite.personas:
        inprocess.learn(suite, persona)
    per_half = len(suite.questions) / 2
    return sweep(persona_measure(suite), knobs, margin=round(100 / per_half + 0.05, 2))


# --- LoCoMo end to end ----------------------------------------------------------------------------


def locomo_measure(conversations: Sequence[Any]) -> Callable[[], dict[str, float]]:
    from bench import locomo_e2e

    def measure() -> dict[str, float]:
        return locomo_e2e.halves(locomo_e2e.ask(conversations, progress=None), conversations)

    return measure


def locomo_sweeps(conversations: Sequence[Any], knobs: Sequence[str]) -> dict[str, Any]:
    """On LoCoMo already ingested end to end: recall@10 per half under each value."""
    per_half = sum(len(c.questions) for c in conversations) / 2
    return sweep(locomo_measure(conversations), knobs, margin=round(100 / per_half + 0.05, 2))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="engram-tuning-") as tmp:
        from bench.env import prepare_environment

        prepare_environment(Path(tmp))
        from bench.env import private_redis
        from bench.persona_data import SUITES_DIR, load_suite

        knobs = sys.argv[1:] or list(SWEEPS)
        with private_redis(Path(tmp) / "redis"):
            result = persona_sweeps(load_suite(SUITES_DIR / "dev.json"), knobs)
        for knob, data in result.items():
            print(knob, "shipped", data["shipped"], "->", data["verdict"])
            for value, row in data["values"].items():
                print(f"   {value:>6}  first {row['first_half']:5.1f}  second {row['second_half']:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
