"""Test-wide fixtures: one embedded Redis (real, with the Query Engine) for the whole session.

Each test starts from an empty database 0 (RediSearch indexes live there only), so tests do not
depend on each other's keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.embedded_redis import EmbeddedRedis, free_port
from core.redis_client import get_redis, pointed_at

pytest_plugins = ["tests.fixtures_llm", "tests.fixtures_browser", "tests.fixtures_cluster"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(port=free_port(), data_dir=Path(tmp_path_factory.mktemp("redis")))
    with server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def _use_test_redis(redis_server: EmbeddedRedis) -> Iterator[None]:
    """Point the whole product (engine, channel layer) at the test server."""
    with pointed_at(redis_server.url, channel_prefix="engram:asgi"):
        yield


@pytest.fixture(autouse=True)
def _empty_redis(_use_test_redis: None) -> Iterator[redis.Redis]:
    from memory.index import forget_index_cache
    from memory.term_stats import forget_term_counts

    client = get_redis()
    client.flushall()
    forget_index_cache()
    forget_term_counts()
    yield client


@pytest.fixture
def redis_client(_empty_redis: redis.Redis) -> redis.Redis:
    return _empty_redis
