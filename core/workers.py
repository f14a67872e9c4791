"""Worker liveness: each worker process writes a heartbeat; the inspector and its status page read them."""

from __future__ import annotations

import json
import time

from django.conf import settings

from core.redis_client import get_redis, key


def heartbeats_key() -> str:
    return key("workers", "heartbeat")


def record_heartbeat(*, worker_id: str, now: float | None = None) -> None:
    get_redis().hset(heartbeats_key(), worker_id, f"{now if now is not None else time.time():.3f}")


def outages_key() -> str:
    return key("workers", "outage")


def remove_heartbeat(*, worker_id: str) -> None:
    get_redis().hdel(heartbeats_key(), worker_id)


def record_outage(*, worker_id: str, started_at: float, ended_at: float) -> None:
    """The last Redis outage this worker went through, written once Redis answers again (during
    it nothing can be written): the status page shows that the worker was cut off and came back."""
    outage = {"started_at": round(started_at, 3), "ended_at": round(ended_at, 3),
              "seconds": round(ended_at - started_at, 3)}  # fmt: skip
    get_redis().hset(outages_key(), worker_id, json.dumps(outage))


def last_outages() -> dict[str, dict[str, float]]:
    """Worker id -> its last Redis outage (started_at, ended_at, seconds)."""
    raw = get_redis().hgetall(outages_key())
    return {(k.decode() if isinstance(k, bytes) else str(k)): json.loads(v) for k, v in raw.items()}


def worker_heartbeats(*, now: float | None = None) -> list[dict[str, object]]:
    """Each known worker with the age of its last heartbeat; stale ones (3 missed beats) are pruned."""
    now = now if now is not None else time.time()
    stale_after = 3 * settings.WORKER_HEARTBEAT_SECONDS
    workers = []
    client = get_redis()
    outages = last_outages()
    for raw_id, raw_ts in client.hgetall(heartbeats_key()).items():
        worker_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        age = max(0.0, now - float(raw_ts))
        if age > 10 * stale_after:
            client.hdel(heartbeats_key(), worker_id)
            client.hdel(outages_key(), worker_id)
            continue
        worker: dict[str, object] = {"id": worker_id, "age_s": round(age, 1), "alive": age <= stale_after}
        if worker_id in outages:
            worker["last_redis_outage"] = outages[worker_id]
        workers.append(worker)
    return sorted(workers, key=lambda w: str(w["id"]))
