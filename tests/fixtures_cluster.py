"""A local Redis Cluster for the cluster tests: three embedded redis-server processes (primaries,
no replicas), the 16,384 slots split between them. Started once per session, and only when a test
asks for it (`redis_cluster`), so a run without cluster tests pays nothing."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from core.embedded_redis import EmbeddedRedis, free_port
from core.redis_client import get_redis, pointed_at

SLOTS = 16384
NODES = 3


@dataclass
class ClusterNode(EmbeddedRedis):
    """An embedded server with cluster mode on (its own nodes.conf in its data dir)."""

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.data_dir / "nodes.conf"),
            "--cluster-node-timeout",
            "5000",
        ]


@dataclass(frozen=True)
class LocalCluster:
    nodes: list[ClusterNode]

    @property
    def url(self) -> str:
        return self.nodes[0].url


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too (so at most 55535)."""
    for _ in range(200):
        port = free_port()
        if port <= 55535 and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _form(nodes: list[ClusterNode], *, timeout: float = 20.0) -> None:
    clients = [redis.Redis(host="127.0.0.1", port=n.port) for n in nodes]
    try:
        share = SLOTS // len(nodes)
        for i, client in enumerate(clients):
            last = SLOTS - 1 if i == len(nodes) - 1 else (i + 1) * share - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
        for node in nodes[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [c.execute_command("CLUSTER", "INFO") for c in clients]
            texts = [i.decode() if isinstance(i, bytes) else str(i) for i in infos]
            if all("cluster_state:ok" in t and f"cluster_known_nodes:{len(nodes)}" in t for t in texts):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the local Redis Cluster did not form within {timeout}s: {texts}")
    finally:
        for client in clients:
            client.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    nodes = [
        ClusterNode(port=_cluster_port(), data_dir=Path(tmp_path_factory.mktemp(f"cluster{i}")))
        for i in range(NODES)
    ]
    try:
        for node in nodes:
            node.start()
        _form(nodes)
        yield LocalCluster(nodes)
    finally:
        for node in nodes:
            node.stop()


@contextmanager
def on_cluster(cluster: LocalCluster) -> Iterator[redis.Redis]:
    """The whole product pointed at the cluster (REDIS_CLUSTER on), every primary empty."""
    with pointed_at(cluster.url, channel_prefix="engram:asgi", cluster=True):
        client = get_redis()
        client.flushall(target_nodes="primaries")
        yield client


@pytest.fixture
def cluster_redis(redis_cluster: LocalCluster) -> Iterator[redis.Redis]:
    with on_cluster(redis_cluster) as client:
        yield client


@pytest.fixture(name="_empty_redis")
def every_test_on_the_cluster(
    _empty_redis: redis.Redis, redis_cluster: LocalCluster
) -> Iterator[redis.Redis]:
    """Imported by a test module, this replaces conftest's per-test empty Redis there: each of the
    module's tests (often another module's, star-imported) runs against the empty cluster."""
    with on_cluster(redis_cluster) as client:
        yield client


def test_these_tests_run_on_the_cluster(redis_client: redis.Redis) -> None:
    """Collected in every module that imports it: the module really runs on three primaries."""
    assert isinstance(redis_client, redis.RedisCluster)
    assert len(redis_client.get_primaries()) == 3
