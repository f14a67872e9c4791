"""The chat load bench's Markdown section."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.env import machine_line

SEGMENT_LABELS = {
    "before_prompt": "send → retrieval starts (frame in, dedupe, rate limit, save message, thread-pool wait)",
    "build_prompt": "retrieval: `build_prompt` (embed, search, assemble, save trace)",
    "search_incl_embedding": "… of which embedding + search",
    "prompt_to_model": "retrieval done → model request arrives",
    "after_model": "model's last chunk → `done` at the client",
}


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


def _pcts(stats: dict[str, Any]) -> str:
    if not stats.get("n"):
        return "-"
    return f"p50 {_ms(stats['p50_ms'])} · p95 {_ms(stats['p95_ms'])}"


def _verdict(target: dict[str, Any]) -> str:
    return "✅ pass" if target["pass"] else "❌ fail"


def _headline_rows(result: dict[str, Any]) -> list[str]:
    cfg, load = result["config"], result["load"]
    target, speedup = result["targets"][0], result["targets"][1]
    verdict = _verdict(target)
    kinds = "; ".join(f"{k}: {v}" for k, v in load["error_kinds"].items())
    logged = len(result["server_log_errors"])
    many = result["server_processes"]
    runs = [("1 process", load), (f"{many} processes", result["multi_load"])]
    rounds = " · ".join(f"{r['processes']}p {r['turns_per_s']:.1f}" for r in result["rounds"])
    alone = f"1 process: {_pcts(result['baseline']['overhead_ms'])} · {many} processes: " + _pcts(
        result["multi_baseline"]["overhead_ms"]
    )

    def row(label: str, value: Callable[[dict[str, Any]], str]) -> str:
        return f"| {label} | " + " · ".join(f"{name}: {value(phase)}" for name, phase in runs) + " | | |"

    return [
        "| metric | result | target | pass |",
        "|---|---|---|---|",
        f"| Errors, every phase: client-side ({kinds or 'none'} in the first 1-process load) + {logged} "
        f"ERROR records in the servers' logs | {result['errors']} | {target['target']} | {verdict} |",
        f"| **Throughput, {many} processes / 1 process** (mean of the alternated load rounds, turns/s: "
        f"{rounds}) | {result['multi_process_turns_per_s']:.1f} / {result['single_process_turns_per_s']:.1f}"
        f" = **{result['multi_process_speedup']:.2f}x** | {speedup['target']} | {_verdict(speedup)} |",
        f"| **One client alone**: server-side overhead per turn | {alone} | | |",
        row("Turns completed", lambda p: f"{p['turns_completed']} / {p['turns_expected']}"),
        row(
            "**Server-side overhead per turn** (send → `done` minus the model's own time)",
            lambda p: _pcts(p["overhead_ms"]),
        ),
        row("**Time to first token** (send → first `delta`)", lambda p: _pcts(p["ttft_ms"])),
        row("Send → `done`", lambda p: _pcts(p["total_ms"])),
        row(
            f"The model's own time (request in → last chunk out; {cfg['chunks']} chunks, "
            f"{result['nominal_model_ms']:g} ms of scripted delays)",
            lambda p: _pcts(p["model_ms"]),
        ),
        row("Throughput", lambda p: f"{p['throughput_turns_per_s']:.1f} turns/s"),
        row(f"WebSocket handshake, {load['clients']} clients at once", lambda p: _pcts(p["connect_ms"])),
    ]


def _columns(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    alone, load, multi = result["baseline"], result["load"], result["multi_load"]
    many = result["server_processes"]
    columns = [
        (f"one client alone, 1 process ({alone['turns_completed']} turns)", alone),
        (f"{load['clients']} clients, 1 process ({load['turns_completed']} turns)", load),
        (f"{multi['clients']} clients, {many} processes ({multi['turns_completed']} turns)", multi),
    ]
    return columns


def _split_rows(result: dict[str, Any]) -> list[str]:
    columns = _columns(result)
    rows = [
        "| per turn | " + " | ".join(title for title, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, label in SEGMENT_LABELS.items():
        rows.append(f"| {label} | " + " | ".join(_pcts(c["segments_ms"][name]) for _, c in columns) + " |")
    for key, label in (
        ("overhead_ms", "= overhead"),
        ("delta_delivery_ms", "one chunk, model → client (first content chunk written → first `delta`)"),
        ("ttft_ms", "time to first token"),
        ("model_ms", "the model's own time"),
    ):
        rows.append(f"| {label} | " + " | ".join(_pcts(c[key]) for _, c in columns) + " |")
    rows.append(
        "| throughput | "
        + " | ".join(f"{c['throughput_turns_per_s']:.1f} turns/s" for _, c in columns)
        + " |"
    )
    rows.append("| errors | " + " | ".join(str(c["errors"]) for _, c in columns) + " |")
    return rows


def _cpu_line(title: str, phase: dict[str, Any], cores: int) -> str:
    """CPU seconds per process over the phase (from /proc; the load generator reports its own)."""
    turns = max(1, phase["turns_completed"])
    cpu = phase["cpu_s"]
    used = sum(cpu.values())
    parts = ", ".join(
        f"{name} {seconds:.1f} s ({1000 * seconds / turns:.0f} ms/turn)" for name, seconds in cpu.items()
    )
    # With lost turns, the wall time includes the clients' wait for frames that never came.
    waited = " (includes the wait of timed-out clients)" if phase["errors"] else ""
    return (
        f"- CPU, {title} ({phase['wall_s']:.1f} s wall{waited} x {cores} cores): {parts}; "
        f"{100 * used / (phase['wall_s'] * cores):.0f}% of the machine."
    )


def _unit_cost_line(result: dict[str, Any]) -> str:
    costs = result["unit_costs"]
    phase = _representative(result)
    frames = phase["frames_per_turn"]
    prompt, stream = costs["build_prompt"]["cpu_ms"], costs["stream"]["cpu_ms"]
    layer = costs["channel_layer"]["cpu_ms_per_frame"] * frames
    direct = costs["direct_frame"]["cpu_ms_per_frame"] * frames
    daphne_ms = 1000 * phase["cpu_s"]["daphne"] / max(1, phase["turns_completed"])
    known = prompt + stream + direct
    return (
        f"- Unit costs, each timed alone in the bench process (CPU per turn): `build_prompt` {prompt:.0f} ms "
        f"(embedding the message {costs['embedding']['cpu_ms']:.0f} ms of it), consuming the streamed "
        f"reply with the openai client {stream:.0f} ms, {frames:g} frames handed to the socket's consumer "
        f"directly ({costs['direct_frame']['cpu_ms_per_frame']:.3f} ms each) {direct:.1f} ms (through the "
        f"channel layer, as before: group_send + pub/sub read, "
        f"{costs['channel_layer']['cpu_ms_per_frame']:.2f} ms each, {layer:.0f} ms): "
        f"{known:.0f} ms. Under load one daphne used {daphne_ms:.0f} ms CPU per turn; the other "
        f"~{max(0.0, daphne_ms - known):.0f} ms are the WebSocket frames out (Twisted/autobahn), the "
        "consumer's dispatch, saving the reply and queueing extraction, and logging. One daphne process "
        f"runs Python on one core (GIL), so at {daphne_ms:.0f} ms per turn it tops out near "
        f"{1000 / daphne_ms:.0f} turns/s; past that, concurrent turns wait in queues."
    )


def _machine_lines(result: dict[str, Any]) -> list[str]:
    cores = result["machine"]["cores"] or 1
    lines = [_cpu_line(title, phase, cores) for title, phase in _columns(result)[1:]]
    lines.append(_unit_cost_line(result))
    redis = _representative(result)["redis"]
    top = ", ".join(f"{row['command']} {row['calls_per_turn']:.0f}x" for row in redis["top"][:6])
    lines += [
        "- The load generator (its own process), daphne, Redis and the scripted model (its own process) "
        f"share the machine's {cores} cores; client-side and model timings stretch with the server's "
        "CPU use and the other way round.",
        f"- Redis: {redis['calls_per_turn']:.0f} commands and {redis['usec_per_turn'] / 1000:.1f} ms of "
        f"server time per turn; most called: {top}. A turn's frames reach the tabs in its own "
        "process directly; the channel layer (one PUBLISH per frame) carries them only to tabs on "
        "other processes, which a PUBSUB NUMSUB per non-delta frame (and per 0.5 s of deltas) looks for.",
    ]
    return lines


def _exceptions(blocks: list[str]) -> str:
    """The exception each logged traceback ended in, with counts."""
    found = Counter(block.splitlines()[-1].strip() for block in blocks if "Traceback" in block)
    return "; ".join(f"`{text}` x{count}" for text, count in found.most_common(3)) or "none"


def _representative(result: dict[str, Any]) -> dict[str, Any]:
    """The load phase the analysis lines describe."""
    phase: dict[str, Any] = result["load"]
    return phase


def _little(phase: dict[str, Any]) -> str:
    """Clients that loop without pause: turn time = clients / throughput (Little's law)."""
    rate = phase["throughput_turns_per_s"] or 1.0
    return (
        f"- The clients send again as soon as `done` arrives, so the server is always full: by Little's "
        f"law a turn takes clients / throughput = {phase['clients']} / {rate:.1f} per s = "
        f"{phase['clients'] / rate:.1f} s. Under this load the overhead measures the capacity of one "
        "daphne process (queueing), not the cost of a turn; that cost is the one-client column."
    )


def _where(result: dict[str, Any]) -> list[str]:
    phase = _representative(result)
    segments = phase["segments_ms"]
    ranked = sorted(
        (name for name in SEGMENT_LABELS if name != "search_incl_embedding" and segments[name].get("n")),
        key=lambda name: segments[name]["p50_ms"],
        reverse=True,
    )
    if not ranked:
        return []
    which = "the load"
    return [
        _little(phase),
        f"- Overhead split at p50 in {which}: "
        + ", ".join(
            f"{SEGMENT_LABELS[name].split(' (')[0]} {_ms(segments[name]['p50_ms'])}" for name in ranked
        )
        + ". From daphne's own per-turn retrieval traces and the model's timestamps (one clock).",
    ]


def _profile_lines(result: dict[str, Any]) -> list[str]:
    profile = result.get("profile") or {}
    if not profile.get("samples"):
        return [f"- No sampled profile: {profile.get('note', 'run without --no-profile')}."]
    buckets = ", ".join(
        f"{b['name']} {100 * b['share']:.0f}%" for b in profile["buckets"] if b["share"] >= 0.01
    )
    own = ", ".join(f"`{b['name']}` {100 * b['share']:.0f}%" for b in profile["top_own"][:8])
    return [
        f"- py-spy on one of the {result['server_processes']} processes through its first load round "
        f"({profile['samples']} samples at {profile['rate_hz']} Hz; py-spy leaves idle threads out by a "
        "heuristic, so waits in select()/recv() still show in part): by the library the "
        f"sampled frame is in, {buckets}. Most own time: {own}.",
    ]


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        "## Chat under load",
        "",
        machine_line(result),
        "",
        f"{cfg['clients']} anonymous visitors, each on its own WebSocket (Origin + session cookie), send "
        f"{cfg['turns']} turns one after another (the next after `done`), in load rounds alternating "
        f"between 1 daphne process and {result['server_processes']} on one port (as `make run` starts "
        "them); the model "
        f"is the scripted OpenAI-compatible server in its own process, streaming {cfg['chunks']} content "
        f"chunks {cfg['chunk_delay'] * 1000:g} ms apart. Each visitor has {cfg['memories_per_user']} "
        "memories, so retrieval embeds the message (local all-MiniLM-L6-v2) and searches for real. No "
        f"extraction worker runs (turns stay queued). A turn with no frame for {cfg['frame_timeout']:g} s "
        "is an error and ends that client.",
        "",
        *_headline_rows(result),
        "",
        "The channel layer is channels-redis' pub/sub layer (core/channel_layer.py): it has no "
        "`capacity` to overflow and a closing socket cannot take another socket's frame with it, so a "
        "frame that never arrives shows above as a client error.",
        "",
        "Where the overhead goes:",
        "",
        *_split_rows(result),
        "",
        *_where(result),
        *_machine_lines(result),
        *_profile_lines(result),
        "",
        "Raw numbers: `bench/results/chat_load.json`. Rerun: `python -m bench --only chat_load [--quick]`.",
        "",
    ]
    return "\n".join(lines)
