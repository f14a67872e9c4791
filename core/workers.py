"""Worker liveness: each worker process writes a heartbeat; the inspector and its status page read them."""

from __future__ import annotations

import time

from django.conf import settings

from core.redis_client import get_redis, key


def heartbeats_key() -> str:
    return key("workers", "heartbeat")


def record_heartbeat(*, worker_id: str, now: float | None = None) -> None:
    get_redis().hset(heartbeats_key(), worker_id, f"{now if now is not None else time.time():.3f}")


def remove_heartbeat(*, worker_id: str) -> None:
    get_redis().hdel(heartbeats_key(), worker_id)


def worker_heartbeats(*, now: float | None = None) -> list[dict[str, object]]:
    """Each known worker with the age of its last heartbeat; stale ones (3 missed beats) are pruned."""
    now = now if now is not None else time.time()
    stale_after = 3 * settings.WORKER_HEARTBEAT_SECONDS
    workers = []
    client = get_redis()
    for raw_id, raw_ts in client.hgetall(heartbeats_key()).items():
        worker_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        age = max(0.0, now - float(raw_ts))
        if age > 10 * stale_after:
            client.hdel(heartbeats_key(), worker_id)
            continue
        workers.append({"id": worker_id, "age_s": round(age, 1), "alive": age <= stale_after})
    return sorted(workers, key=lambda w: str(w["id"]))
