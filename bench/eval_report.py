"""The evaluation's report: JSON beside a Markdown section for BENCHMARKS.md."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import locomo
from bench.locomo import CATEGORIES


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _e2e_row(name: str, run: Mapping[str, Any]) -> list[Any]:
    cats = [f"{run['by_category'][c]['recall_at_10']:.1f}" for c in CATEGORIES.values()]
    return [
        name,
        f"{run['recall_at_5']:.1f}",
        f"**{run['recall_at_10']:.1f}**",
        f"{run['recall_at_25']:.1f}",
        *cats,
        f"{run['tokens_per_question_mean']:.0f}",
        f"{run['facts_share_of_memories_percent']:.0f} %",
        f"{run['build_prompt_p50_ms']:.1f} / {run['build_prompt_p95_ms']:.1f}",
    ]


def _sweep_rows(split: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for knob, data in split.items():
        values = ", ".join(
            f"{v}: {r['first_half']:.1f} / {r['second_half']:.1f}"
            + (" ←" if float(v) == data["shipped"] else "")
            for v, r in data["values"].items()
        )
        rows.append([f"`{knob}`", data["shipped"], values, data["verdict"]])
    return rows


def locomo_markdown(report: Mapping[str, Any]) -> str:
    parts = [locomo.render_markdown(report)]
    halves = report.get("split_halves_recall_at_10")
    if halves:
        rows = [[name, h["first_half"], h["second_half"]] for name, h in halves.items()]
        parts += [
            "Raw-turn runs on each half (R@10, conversations 1-5 / 6-10): what the conversation context adds "
            "holds on both.",
            "",
            _table(["run", "first half", "second half"], rows),
            "",
        ]
    named = {
        "end to end, offline rules": "end_to_end_rules",
        "end to end, scripted model": "end_to_end_model",
    }
    runs: list[tuple[str, Mapping[str, Any]]] = [(n, report[k]) for n, k in named.items() if report.get(k)]
    if not runs:
        return parts[0]
    headers = ["pipeline", "R@5", "R@10", "R@25", *[f"R@10 {c}" for c in CATEGORIES.values()],
               "tokens / question (top 10)", "facts in top 10", "build_prompt ms p50 / p95"]  # fmt: skip
    rows = [_e2e_row(name, run) for name, run in runs]
    for name, run in runs:
        ttl = run.get("with_default_message_ttl")
        if ttl:
            rows.append(_e2e_row(f"{name}, raw turns older than {ttl['ttl_days']} days expired", ttl))
    first = runs[0][1]
    parts += [
        "### LoCoMo end to end: the pipeline the chat ships",
        "",
        "Every LoCoMo turn pair went through the chat's ingestion: working memory, the turn stream and the "
        "worker's job (speaker A as the user, speaker B as the assistant; both stored as `message` "
        "memories), each session at its own date. Every question went through `build_prompt` with the "
        "product's defaults (cut, merge of a fact with its source turn, token budget); an evidence turn "
        "counts as found when a memory in the prompt is that turn or was extracted from it. The scripted "
        "model extracts LoCoMo's own `observation` annotations (a model that extracts like the annotators): "
        "it measures the model path, not a model. Raw turns are kept for the run (LoCoMo spans 5 to 10 "
        "months); the last rows delete those the default 90-day `MESSAGE_TTL_SECONDS` would have expired "
        "by the conversation's end.",
        "",
        _table(headers, rows),
        "",
        "Split halves (R@10, conversations 1-5 / 6-10), offline rules: "
        f"{first['split_halves_recall_at_10']['first_half']} / "
        f"{first['split_halves_recall_at_10']['second_half']}. "
        f"Memories stored (offline rules): {first['memories_by_type']}; extraction outcomes "
        f"{first['extraction_outcomes']}; ingest {first['ingest_seconds']:.0f} s.",
        "",
    ]
    if first.get("split_half"):
        parts += [
            "Split-half check of the knobs that shape what the chat retrieves (end-to-end R@10, first / "
            "second half; ← the shipped value):",
            "",
            _table(
                ["knob", "shipped", "value: first / second half", "verdict"], _sweep_rows(first["split_half"])
            ),
            "",
        ]
    return "\n".join(parts)


def write_locomo(report: Mapping[str, Any], folder: Path, suffix: str = "") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"locomo{suffix}.json", folder / f"locomo{suffix}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(locomo_markdown(report))
    return [json_path, md_path]


def _persona_rows(mode: str, graded: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for name, g in graded.items():
        rows.append([
            f"{name} ({mode})", g["personas"], g["facts"], g["questions"],
            f"**{g['facts_learned']['percent']:.1f} %**", f"**{g['questions_answered']['percent']:.1f} %**",
            f"{g['changes_applied']['percent']:.1f} %", f"{g['broad_questions_recall']['percent']:.1f} %",
            len(g["turn_errors"]),
        ])  # fmt: skip
    return rows


def _kind_rows(result: Mapping[str, Any]) -> list[list[Any]]:
    kinds = sorted(
        {k for mode in ("offline", "model") for g in result.get(mode, {}).values() for k in g["by_kind"]}
    )
    rows = []
    for kind in kinds:
        row: list[Any] = [kind]
        for mode in ("offline", "model"):
            for g in result.get(mode, {}).values():
                cell = g["by_kind"].get(kind)
                row.append(
                    f"{cell['learned']['percent']:.0f} / {cell['answered']['percent']:.0f}" if cell else "-"
                )
        rows.append(row)
    return rows


def personas_markdown(result: Mapping[str, Any]) -> str:
    rows = [
        *_persona_rows("offline", result.get("offline", {})),
        *_persona_rows("scripted model", result.get("model", {})),
    ]
    names = [f"{name} {mode}" for mode in ("offline", "model") for name in result.get(mode, {})]
    parts = [
        "## Persona suites: what Engram learns and recalls",
        "",
        "People tell Engram about themselves in ordinary chat (bench/personas/*.json), then ask in a new "
        "chat with other words. Driven as a browser does: a real daphne and worker, a new chat from the "
        "page, every message over the chat WebSocket; each chat on its own day (the servers' clock is set "
        "per chat). **Learned** = a stored fact (not a raw turn) contains the fact's key values; "
        "**answered** = the reply contains the answer (offline: the reply the user reads; scripted model: "
        "the model reads back the memories it was given). `dev` is the suite the extractor was tuned on; "
        "`holdout` was written by someone who saw neither the code nor dev (then also used for tuning); "
        "`fresh` was written last, never tuned on: the best guess for unseen people. The scripted model "
        "extracts the suites' own statements (bench/personas/statements.json): it measures the product "
        "around a perfect extractor.",
        "",
        _table(
            [
                "suite",
                "personas",
                "facts",
                "questions",
                "facts learned",
                "questions answered",
                "changes applied",
                "broad question recall",
                "turn errors",
            ],
            rows,
        ),
        "",
        "Per fact kind, learned / answered (%):",
        "",
        _table(["kind", *names], _kind_rows(result)),
        "",
    ]
    if result.get("split_half"):
        parts += [
            "Split-half check on the dev suite (offline questions answered, personas 1-20 / 21-40; "
            "← shipped):",
            "",
            _table(
                ["knob", "shipped", "value: first / second half", "verdict"],
                _sweep_rows(result["split_half"]),
            ),
            "",
        ]
    return "\n".join(parts)


def write_personas(result: Mapping[str, Any], folder: Path, suffix: str = "") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"personas{suffix}.json", folder / f"personas{suffix}.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(personas_markdown(result))
    return [json_path, md_path]
