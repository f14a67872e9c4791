"""The one place that builds Redis clients. Everything else asks `get_redis()` / `get_async_redis()`."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import redis
import redis.asyncio as aioredis
from channels.layers import channel_layers as layer_registry
from django.conf import settings

from core.channel_config import channel_layers

_lock = threading.Lock()
_sync_clients: dict[str, redis.Redis] = {}
# Async clients are bound to the loop that created their connections, so keep one per loop.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)

_CONNECT_TIMEOUT = 5
_SOCKET_TIMEOUT = 30
_HEALTH_CHECK_INTERVAL = 30
# RESP2: raw FT.SEARCH replies are flat lists we parse in memory/raw_search.py (redis-py 8 defaults to RESP3).
_PROTOCOL = 2
# redis-py 8's async pool raises past 100 connections; a busy server process needs more.
_MAX_ASYNC_CONNECTIONS = 1024


def is_cluster() -> bool:
    """REDIS_CLUSTER=1: REDIS_URL names one node of a Redis Cluster (README, "Redis Cluster")."""
    return bool(getattr(settings, "REDIS_CLUSTER", False))


def get_redis(*, url: str | None = None) -> redis.Redis:
    """A process-wide client for `url` (default settings.REDIS_URL); thread-safe, pooled by redis-py.

    On a cluster it is a `redis.RedisCluster`: the same command API, and its transactions
    (`pipeline(transaction=True)`, WATCH/MULTI, EVAL) work when all their keys share one hash slot,
    which memory/keys.py's hash tags arrange."""
    url = url or settings.REDIS_URL
    client = _sync_clients.get(url)
    if client is None:
        with _lock:
            client = _sync_clients.get(url)
            if client is None:
                options = {
                    "socket_connect_timeout": _CONNECT_TIMEOUT,
                    "socket_timeout": _SOCKET_TIMEOUT,
                    "health_check_interval": _HEALTH_CHECK_INTERVAL,
                    "protocol": _PROTOCOL,
                }
                if is_cluster() and url == settings.REDIS_URL:
                    # Not a subclass of redis.Redis, but the command API callers use is the same.
                    client = cast(redis.Redis, redis.RedisCluster.from_url(url, **options))
                else:
                    client = redis.Redis.from_url(url, **options)
                _sync_clients[url] = client
    return client


# Every key of the long-term memory tier (memories, history, trash, the mutation stream, the index's
# documents) carries this hash tag, so on a cluster the whole tier is one slot on one shard: its
# transactions never span slots, and the search module (which indexes only its own shard) sees all
# of it. README, "Redis Cluster".
MEMORY_TAG = "{m}"

T = TypeVar("T")


def get_memory_redis() -> redis.Redis:
    """The client for keyless memory-tier commands (FT.SEARCH, FT.CREATE, FT.INFO, ...): on a
    cluster a plain client of the node that holds the memory slot now (looked up in the cluster
    client's slot map at every call), else `get_redis()`. Keyed commands for that slot work on it
    too, so a pipeline of searches and HMGETs runs there in one round trip."""
    if not is_cluster():
        return get_redis()
    cluster = cast(redis.RedisCluster, get_redis())
    return cluster.get_redis_connection(cluster.get_node_from_key(MEMORY_TAG))


def on_memory_node(call: Callable[[redis.Redis], T]) -> T:
    """`call(get_memory_redis())`; on a cluster once more after the slot map is read again when
    the node no longer holds the slot (MOVED/ASK after a resharding) or is gone (a failover)."""
    try:
        return call(get_memory_redis())
    except (redis.exceptions.MovedError, redis.exceptions.AskError, redis.ConnectionError):
        if not is_cluster():
            raise
        cast(redis.RedisCluster, get_redis()).nodes_manager.initialize()
        return call(get_memory_redis())


def pipelined_on_memory_node(commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Commands in one pipeline (no MULTI) on the memory node, re-resolved like `on_memory_node`."""

    def run(client: redis.Redis) -> list[Any]:
        with client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute())

    return on_memory_node(run)


def get_async_redis() -> aioredis.Redis:
    """A client for the running event loop."""
    loop = asyncio.get_running_loop()
    url: str = settings.REDIS_URL
    per_loop = _async_clients.setdefault(loop, {})
    client = per_loop.get(url)
    if client is None:
        # The cluster client answers the same commands (keys routed by slot); typed as the plain one.
        factory = aioredis.RedisCluster.from_url if is_cluster() else aioredis.Redis.from_url
        client = cast(
            aioredis.Redis,
            factory(
                url,
                socket_connect_timeout=_CONNECT_TIMEOUT,
                socket_timeout=_SOCKET_TIMEOUT,
                health_check_interval=_HEALTH_CHECK_INTERVAL,
                protocol=_PROTOCOL,
                max_connections=_MAX_ASYNC_CONNECTIONS,
            ),
        )
        per_loop[url] = client
    return client


def key(*parts: str) -> str:
    """A key under the configured prefix: key("mem", id) -> "engram:mem:<id>"."""
    return ":".join((settings.REDIS_KEY_PREFIX, *parts))


@contextmanager
def pointed_at(url: str, *, channel_prefix: str, cluster: bool = False) -> Iterator[None]:
    """Point the whole product (clients, channel layer) at another Redis, then back: tests, benches, eval.

    `cluster`: `url` is a node of a Redis Cluster. The channel layer stays where it was then
    (channels-redis speaks to single servers only; README, "Redis Cluster")."""
    saved = (settings.REDIS_URL, settings.REDIS_EMBEDDED, settings.CHANNEL_LAYERS, is_cluster())
    settings.REDIS_URL = url
    settings.REDIS_EMBEDDED = False
    settings.REDIS_CLUSTER = cluster
    if not cluster:
        settings.CHANNEL_LAYERS = channel_layers(url, channel_prefix)
    reset_clients()
    _forget_channel_layers()
    try:
        yield
    finally:
        settings.REDIS_URL, settings.REDIS_EMBEDDED, settings.CHANNEL_LAYERS, settings.REDIS_CLUSTER = saved
        reset_clients()
        _forget_channel_layers()


def _forget_channel_layers() -> None:
    """Channels caches its layer per alias; the next use must read the new CHANNEL_LAYERS."""
    layer_registry.backends.clear()


def reset_clients() -> None:
    """Drop cached clients (tests that point REDIS_URL somewhere else)."""
    with _lock:
        for client in _sync_clients.values():
            client.close()
        _sync_clients.clear()


# Redis cannot be reached, has gone away mid-command or is still loading its data (BusyLoadingError
# is a ConnectionError): callers that outlive an outage catch these and try again later.
REDIS_UNREACHABLE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
