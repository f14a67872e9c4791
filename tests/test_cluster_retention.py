"""The retention sweep (tests/test_retention.py) run again against a local 3-node
Redis Cluster: the memory tier is one slot, the sessions and the user's lists sit in others, and
each step keeps to one slot in an order a kill cannot make lose anything."""

from collections.abc import Iterator

import pytest
import redis

from tests.fixtures_cluster import LocalCluster, on_cluster
from tests.test_retention import *  # noqa: F403  (the same tests, collected here once more)


@pytest.fixture(autouse=True)
def _empty_redis(_empty_redis: redis.Redis, redis_cluster: LocalCluster) -> Iterator[redis.Redis]:
    with on_cluster(redis_cluster) as client:
        yield client


def test_these_tests_run_on_the_cluster(redis_client):
    assert isinstance(redis_client, redis.RedisCluster)
    assert len(redis_client.get_primaries()) == 3
