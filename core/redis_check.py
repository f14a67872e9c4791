"""Does this Redis have what Engram needs? The Query Engine (RediSearch 2.10+) and HEXPIRE (Redis 7.4+).

Run wherever the product meets a Redis: `make run` (core/launcher.py), `manage.py check` (a system check
registered in core/apps.py; `manage.py memory_worker` runs it before the worker starts) and the staff
status page (core/health.py).
The rules are pure functions over the MODULE LIST and INFO replies, so they are tested without a server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis
from django.conf import settings
from django.core import checks

from core.redis_client import get_redis

# RediSearch encodes its version as major*10000 + minor*100 + patch (2.10.5 is 21005). 2.10 is the
# version the query builders (memory/query.py) and their segfault workarounds are tested against.
MIN_SEARCH_VERSION = (2, 10)
# Working memory expires tool-cache fields one by one with HEXPIRE (memory/working.py), new in 7.4.
MIN_REDIS_VERSION = (7, 4)


class RedisUnsuitable(RuntimeError):
    """The configured Redis lacks a module or a command Engram needs."""


def parse_module_list(reply: Sequence[object]) -> dict[str, int]:
    """Module name → version from a MODULE LIST reply (RESP2 flat lists or RESP3 maps, bytes or str)."""
    modules: dict[str, int] = {}
    for entry in reply:
        pairs = entry.items() if isinstance(entry, Mapping) else _pairs(entry)
        info = {_text(key): value for key, value in pairs}
        modules[_text(info.get("name", ""))] = int(_text(info.get("ver", 0)))
    return modules


def loaded_modules(client: redis.Redis) -> dict[str, int]:
    """Module name → version, from MODULE LIST."""
    return parse_module_list(client.module_list())


def redis_problems(*, modules: Mapping[str, int], redis_version: str) -> list[str]:
    """What this server lacks, in plain words (empty when it has everything)."""
    problems = []
    if "search" not in modules:
        problems.append(
            "it has no 'search' module (the Redis Query Engine, RediSearch), which Engram needs for vector "
            "and keyword search"
        )
    elif _search_version(modules["search"]) < MIN_SEARCH_VERSION:
        problems.append(
            f"its 'search' module is version {_dotted(_search_version(modules['search']))}; Engram needs "
            f"{_dotted(MIN_SEARCH_VERSION)} or newer"
        )
    if _release(redis_version) < MIN_REDIS_VERSION:
        problems.append(
            f"it is Redis {redis_version}, without HEXPIRE (new in {_dotted(MIN_REDIS_VERSION)}), which "
            "working memory uses to expire cached tool results"
        )
    return problems


def redis_problems_of(client: redis.Redis) -> list[str]:
    """`redis_problems` of a live server (one MODULE LIST, one INFO)."""
    version = str(client.info("server").get("redis_version", "0"))
    return redis_problems(modules=loaded_modules(client), redis_version=version)


def check_redis(client: redis.Redis, url: str) -> None:
    """Fail with a clear message naming what the server lacks."""
    problems = redis_problems_of(client)
    if problems:
        raise RedisUnsuitable(unsuitable_message(problems, url))


def unsuitable_message(problems: Sequence[str], url: str) -> str:
    return (
        f"The Redis at {_redact(url)} cannot serve Engram: {'; '.join(problems)}. Use Redis 8 (the Query "
        f"Engine is built in) or Redis Stack {_dotted(MIN_REDIS_VERSION)}+, or unset REDIS_URL to use the "
        "embedded server."
    )


def _search_version(encoded: int) -> tuple[int, int]:
    return encoded // 10000, encoded // 100 % 100


def _release(version: str) -> tuple[int, int]:
    major, minor = [*[int(part) if part.isdigit() else 0 for part in version.split(".")[:2]], 0, 0][:2]
    return major, minor


def _dotted(version: tuple[int, int]) -> str:
    return ".".join(map(str, version))


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(entry: object) -> list[tuple[object, object]]:
    items = list(entry) if isinstance(entry, list | tuple) else []
    return list(zip(items[::2], items[1::2], strict=False))


def redis_system_check(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """`manage.py check` (and every command that runs the system checks, the worker's among them)."""
    try:
        problems = redis_problems_of(get_redis())
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if settings.REDIS_EMBEDDED:
            return []  # `make run` starts the embedded server (whose modules it checks) when needed
        return [
            checks.Warning(
                f"The Redis at {_redact(settings.REDIS_URL)} does not answer ({exc}), so its modules were "
                "not checked.",
                id="core.W001",
            )
        ]
    if not problems:
        return []
    return [
        checks.Error(
            unsuitable_message(problems, settings.REDIS_URL),
            hint="Commands that only touch the database (migrate, createsuperuser) run with --skip-checks.",
            id="core.E001",
        )
    ]
