"""A private embedded Redis that a test may kill and start again (same port, same data dir)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.embedded_redis import EmbeddedRedis, free_port
from core.redis_client import pointed_at


@contextmanager
def private_redis(data_dir: Path) -> Iterator[EmbeddedRedis]:
    """The whole product (clients, channel layer) pointed at a server only this test uses."""
    from memory.index import forget_index_cache

    with (
        EmbeddedRedis(port=free_port(), data_dir=data_dir) as server,
        pointed_at(server.url, channel_prefix="outage:asgi"),
    ):
        forget_index_cache()
        try:
            yield server
        finally:
            forget_index_cache()


def kill(server: EmbeddedRedis) -> None:
    """SIGKILL, as a crash: no AOF flush beyond what everysec already wrote."""
    assert server.process is not None
    server.process.kill()
    server.process.wait(timeout=5)
    if server.process.stderr:
        server.process.stderr.close()
    server.process = None


def restart(server: EmbeddedRedis) -> None:
    server.start()
