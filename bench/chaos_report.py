"""The chaos bench's section of BENCHMARKS.md."""

from __future__ import annotations

from typing import Any

from bench.env import machine_line


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def markdown(result: dict[str, Any]) -> str:
    a, b = result["workers"], result["redis"]
    cfg = result["config"]["workers"]
    lines = [
        "## Chaos: processes killed under load",
        "",
        machine_line(result),
        "",
        "`python -m bench --only chaos` (bench/chaos.py). Targets from issue 13; a miss is a finding.",
        "",
        "| target | met |",
        "|---|---|",
        *(f"| {t['name']} | {_yes(t['pass'])} |" for t in result["targets"]),
        "",
        f"### A. Worker SIGKILLs ({cfg['workers']} `memory_worker` processes, private Redis with AOF)",
        "",
        f"{a['turns']} offline-extractable turns over {a['sessions']} sessions, queued while a worker was "
        f"SIGKILLed and restarted under the same worker id every {cfg['kill_every_s'][0]}-"
        f"{cfg['kill_every_s'][1]} s ({a['kills_of_a_started_worker']} of the kills hit a worker past its "
        f"start-up); reclaim after {cfg['reclaim_idle_s']:g} s idle.",
        "",
        "| worker kills | turns | lost turns | duplicate memories | dead letters | caused by kills "
        "| turns parked twice | consumers left in the group | drained | time to drain |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {a['worker_kills']} | {a['turns']} | {a['lost_turns']} | {a['duplicate_memories']} "
        f"| {a['dead_letters']} | {a['dead_letters_caused_by_kills']} | {a['turns_parked_twice']} "
        f"| {a['consumers_in_group']} | {_yes(a['drained'])} | {a['time_to_drain_s']} s |",
        "",
        f"Dead-lettered turns: {a['dead_lettered_turns']}; still queued when the drain timed out: "
        f"{a['unfinished_turns']}; applied turns whose message memory is missing: "
        f"{a['applied_turns_without_their_message_memory']}; dead-letter errors: "
        f"{a['dead_letter_errors'] or 'none'}; entries taken over from another consumer: "
        f"{a['entries_taken_over']}; session locks held when the kills stopped: "
        f"{a['session_locks_held_after_kills']}; queue at the end: {a['queue']}; counters: {a['counters']}.",
        "",
        "### B. redis-server SIGKILLs under chat load (`manage.py run_engram`, as `make run`)",
        "",
        f"{b['redis_kills']} kills; {b.get('acknowledged_turns', 0)} of {b.get('turns_sent', 0)} chat turns "
        f"acknowledged, **{b.get('acknowledged_turns_lost', '?')} acknowledged turns lost**; every process "
        f"back by itself: {_yes(b['recovered_after_redis_restart'])}; launcher started "
        f"{b['launches']} time(s) in all.",
        "",
        "| kill | Redis back by | Redis down | first turn after PING | then healthz + heartbeat "
        "| time to recover | by itself |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, kill in enumerate(b["kills"], start=1):
        if "skipped" in kill:
            lines.append(f"| {n} | skipped: {kill['skipped']} | | | | | |")
            continue
        lines.append(
            f"| {n} | {kill['redis_restarted_by']} | {kill['redis_down_s']} s | "
            f"{_s(kill['first_turn_after_ping_s'])} | "
            f"{_s(kill['healthz_and_heartbeat_after_first_turn_s'])} | "
            f"{_s(kill['time_to_recover_s'])} | {_yes(kill['recovered_by_itself'])} |"
        )
    exits = [k["launcher_exit"] for k in b["kills"] if k.get("launcher_exit")]
    if exits:
        lines += ["", f"The launcher exited after {len(exits)} kill(s); it said: {exits[0]['said']}."]
    if b.get("failed_turns_by_error"):
        lines += ["", f"Turns without a `done` frame, by error: {b['failed_turns_by_error']}."]
    lines += [
        "",
        "A turn counts as lost when its `done` frame arrived but, after recovery and a drain, it is not in "
        "working memory or neither extracted (its message memory) nor pending nor parked. "
        "`time to recover` runs from Redis answering PING again to a chat turn working, /healthz ok "
        "and a worker heartbeat under 3 s old; when Redis did not come back within 15 s the bench "
        "restarted it (or the launcher, if that had exited), which counts as not recovered by itself.",
        "",
    ]
    return "\n".join(lines)


def _s(value: float | None) -> str:
    return "timed out" if value is None else f"{value} s"
