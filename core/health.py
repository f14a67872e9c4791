"""What /healthz reports: Redis, its modules, the memory index, the providers and the workers."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings

from core.embedded_redis import loaded_modules
from core.embeddings import get_embedder
from core.llm import describe_llm
from core.redis_client import get_redis
from core.workers import worker_heartbeats


def health_report() -> dict[str, Any]:
    report: dict[str, Any] = {"status": "ok"}
    client = get_redis()
    try:
        info = client.info("server")
        modules = loaded_modules(client)
        report["redis"] = {
            "reachable": True,
            "embedded": settings.REDIS_EMBEDDED,
            "version": info.get("redis_version"),
            "modules": [{"name": name, "version": version} for name, version in sorted(modules.items())],
        }
        report["index"] = _index_state()
        workers = worker_heartbeats()
        report["worker"] = {"alive": any(w["alive"] for w in workers), "workers": workers}
        report["extraction"] = _extraction_state()
        if "search" not in modules:
            report["status"] = "degraded"
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        report["status"] = "error"
        report["redis"] = {"reachable": False, "embedded": settings.REDIS_EMBEDDED, "error": str(exc)}
        report["index"] = None
        report["worker"] = {"alive": False, "workers": []}
        report["extraction"] = None
    embedder = get_embedder()
    report["embedding"] = {"provider": embedder.provider, "model": embedder.model, "dims": embedder.dims}
    report["llm"] = describe_llm()
    return report


def _index_state() -> dict[str, Any] | None:
    from memory.index import index_state

    return index_state()


def _extraction_state() -> dict[str, Any]:
    from memory.extraction.queue import queue_health

    return queue_health()
