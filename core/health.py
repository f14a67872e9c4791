"""Health: a public liveness answer, and the details only staff may see.

`/healthz` is public (load balancers, `make run`, the benches), so it says only whether Redis
answers: no versions, host names, pids or endpoints, and no writes. The details (Redis version and
modules, workers, providers) are for the staff status page (inspector/status.py), which
adds the memory index and the extraction queue.
"""

from __future__ import annotations

from typing import Any, Literal

import redis
from django.conf import settings

from core.embeddings import get_embedder
from core.llm import describe_llm
from core.redis_check import loaded_modules, redis_problems
from core.redis_client import get_redis
from core.workers import worker_heartbeats

Liveness = Literal["ok", "degraded"]


def liveness() -> Liveness:
    """One PING: the product cannot serve a chat or a page of memories without Redis."""
    try:
        get_redis().ping()
    except (redis.ConnectionError, redis.TimeoutError):
        return "degraded"
    return "ok"


def system_status() -> dict[str, Any]:
    """Redis (version, modules), the workers and the model providers, for staff.

    `status` is "error" when Redis does not answer, "degraded" when it lacks the Query Engine or
    HEXPIRE (`redis.problems` says what, in the words `make run` and `manage.py check` use).
    """
    report: dict[str, Any] = {"status": "ok"}
    client = get_redis()
    try:
        info = client.info("server")
        modules = loaded_modules(client)
        problems = redis_problems(modules=modules, redis_version=str(info.get("redis_version", "0")))
        report["redis"] = {
            "reachable": True,
            "embedded": settings.REDIS_EMBEDDED,
            "version": info.get("redis_version"),
            "modules": [{"name": name, "version": version} for name, version in sorted(modules.items())],
            "problems": problems,
        }
        workers = worker_heartbeats()
        report["worker"] = {"alive": any(w["alive"] for w in workers), "workers": workers}
        if problems:
            report["status"] = "degraded"
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        report["status"] = "error"
        report["redis"] = {"reachable": False, "embedded": settings.REDIS_EMBEDDED, "error": str(exc)}
        report["worker"] = {"alive": False, "workers": []}
    embedder = get_embedder()
    report["embedding"] = {"provider": embedder.provider, "model": embedder.model, "dims": embedder.dims}
    report["llm"] = describe_llm()
    return report
