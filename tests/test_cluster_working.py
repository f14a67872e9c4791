"""The working-memory tests (tests/test_working_memory.py), run again against a local 3-node Redis
Cluster: each session's transactions stay in its slot, the user's lists are written beside them."""

from collections.abc import Iterator

import pytest
import redis

from tests.fixtures_cluster import LocalCluster, on_cluster
from tests.test_working_memory import *  # noqa: F403  (the same tests, collected here once more)


@pytest.fixture(autouse=True)
def _empty_redis(_empty_redis: redis.Redis, redis_cluster: LocalCluster) -> Iterator[redis.Redis]:
    with on_cluster(redis_cluster) as client:
        yield client


def test_these_tests_run_on_the_cluster(redis_client):
    assert isinstance(redis_client, redis.RedisCluster)
    assert len(redis_client.get_primaries()) == 3
