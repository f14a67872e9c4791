"""Reading what the Redis server says about itself: memory, command stats, FT.INFO, versions."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def used_memory(client: redis.Redis) -> int:
    """`used_memory` once lazy frees are done (a pending UNLINK would hide freed bytes)."""
    for _ in range(200):
        info = client.info("memory")
        if int(info.get("lazyfree_pending_objects", 0)) == 0:
            return int(info["used_memory"])
        time.sleep(0.05)
    return int(client.info("memory")["used_memory"])


def settled_used_memory(client: redis.Redis, timeout: float = 15.0) -> int:
    """`used_memory` once it stops moving: FT.DROPINDEX and lazy frees release memory in the background."""
    deadline = time.monotonic() + timeout
    last = used_memory(client)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = used_memory(client)
        if abs(now - last) < 64 * 1024:
            return now
        last = now
    return last


def wait_for_background_work(client: redis.Redis, timeout: float = 120.0) -> dict[str, Any]:
    """Let an AOF rewrite (a fork on a 2-core box) finish before timing anything."""
    deadline = time.monotonic() + timeout
    waited = 0.0
    while time.monotonic() < deadline:
        info = client.info("persistence")
        busy = int(info.get("aof_rewrite_in_progress", 0)) or int(info.get("rdb_bgsave_in_progress", 0))
        if not busy:
            break
        time.sleep(0.25)
        waited += 0.25
    info = client.info("persistence")
    return {"waited_s": waited, "aof_rewrites": int(info.get("aof_rewrites", 0))}


def reset_command_stats(client: redis.Redis) -> None:
    client.config_resetstat()


def command_stats(client: redis.Redis, command: str) -> dict[str, float]:
    """calls / usec / usec_per_call of one command since the last reset (server-side time)."""
    wanted = f"cmdstat_{command}".lower()
    for name, stats in client.info("commandstats").items():
        if str(name).lower() == wanted and isinstance(stats, dict):
            return {k: float(v) for k, v in stats.items() if k in {"calls", "usec", "usec_per_call"}}
    return {"calls": 0.0, "usec": 0.0, "usec_per_call": 0.0}


def _pairs_to_dict(flat: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in zip(flat[::2], flat[1::2], strict=False):
        out[_text(name)] = value
    return out


def ft_info(client: redis.Redis, index: str) -> dict[str, Any]:
    """FT.INFO's scalar numbers (sizes in MB, counts); nested sections are left out."""
    raw = _pairs_to_dict(client.execute_command("FT.INFO", index))
    numbers: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, list):
            continue
        text = _text(value)
        try:
            numbers[name] = float(text) if "." in text or "e" in text.lower() else int(text)
        except ValueError:
            numbers[name] = text
    return numbers


def versions(client: redis.Redis) -> dict[str, str]:
    info = client.info("server")
    found = {"redis": str(info.get("redis_version", "?"))}
    for entry in client.module_list():
        data = {_text(k): v for k, v in entry.items()}
        ver = int(_text(data.get("ver", 0)))
        # Modules report e.g. 21005 for 2.10.5.
        found[_text(data.get("name", "?"))] = f"{ver // 10000}.{ver // 100 % 100}.{ver % 100}"
    return found


def memory_usage(client: redis.Redis, keys: Iterable[str], chunk: int = 500) -> list[int]:
    """Exact MEMORY USAGE (SAMPLES 0) of each key, pipelined."""
    sizes: list[int] = []
    batch: list[str] = []

    def flush() -> None:
        with client.pipeline(transaction=False) as pipe:
            for name in batch:
                pipe.execute_command("MEMORY", "USAGE", name, "SAMPLES", 0)
            sizes.extend(int(v or 0) for v in pipe.execute())
        batch.clear()

    for name in keys:
        batch.append(name)
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()
    return sizes


def delete_keys(client: redis.Redis, keys: Iterable[str], chunk: int = 1000) -> int:
    deleted = 0
    batch: list[str] = []
    for name in keys:
        batch.append(name)
        if len(batch) >= chunk:
            deleted += int(client.delete(*batch))
            batch.clear()
    if batch:
        deleted += int(client.delete(*batch))
    return deleted
