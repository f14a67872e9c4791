"""The product's channel layer: channels-redis' pub/sub layer, plus a publish for sync code.

channels-redis' core layer loses a message when a receive holding its process-wide read is
cancelled (a socket closing while a frame for another socket is on its way; NOTES.md). The pub/sub
layer reads every subscription on one task per event loop and hands messages to per-channel queues,
so a cancelled receive only drops its own queue.

Its connections belong to one event loop, and `async_to_sync` runs each call on a new loop: a sync
caller (the extraction worker publishing memory events, a sign-out) would open and close a Redis
connection per call. `group_send_blocking` publishes in the layer's own format through the
process-wide pooled client instead.

`deliver` (a chat turn's frames) hands a message straight to the group's sockets in this process
and publishes it only when another process has sockets in the group (NOTES.md, "Frames of a
turn").
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.consumer import get_handler_name
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer

from core.outage import REDIS_DOWN
from core.redis_client import get_redis

logger = logging.getLogger(__name__)

# Marks what this process published: its own sockets got it directly and drop the echo.
ORIGIN_KEY = "_origin"
PROCESS_ORIGIN = uuid.uuid4().hex
# How long a "no other process listens" answer is trusted between a turn's frames (a tab opened on
# another process mid-turn misses at most this much of the stream; `done` always checks afresh).
REMOTE_RECHECK_SECONDS = 0.5


class PubSubChannelLayer(RedisPubSubChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Used for its group naming and sharding only; a loop layer connects on first use, this never does.
        self._addressing = RedisPubSubLoopLayer(*args, **kwargs, channel_layer=self)

    def group_send_blocking(self, group: str, messages: Sequence[dict[str, Any]]) -> None:
        """Publish messages to a group from sync code, over one pooled connection, in one round trip."""
        if not messages:
            return
        channel = self._addressing._get_group_channel_name(group)
        address: str = self._addressing._get_shard(channel).host["address"]
        with get_redis(url=address).pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(channel, self.serialize(message))
            pipe.execute()


class Member(Protocol):
    """A socket of this process in a group (core/websockets.py ProductSocket)."""

    channel_name: str


# Per event loop (a server process has one; tests start one per test): group -> its sockets here.
_local: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, weakref.WeakSet[Any]]] = (
    weakref.WeakKeyDictionary()
)
# Per event loop: group -> (monotonic time of the check, other processes listening).
_remote_seen: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, tuple[float, int]]] = (
    weakref.WeakKeyDictionary()
)


def _members_here() -> dict[str, weakref.WeakSet[Any]]:
    return _local.setdefault(asyncio.get_running_loop(), {})


def joined_here(group: str, member: Member) -> None:
    _members_here().setdefault(group, weakref.WeakSet()).add(member)


def left_here(group: str, member: Member) -> None:
    members = _members_here()
    if group in members:
        members[group].discard(member)
        if not members[group]:
            del members[group]


def members_here(group: str) -> list[Any]:
    return list(_members_here().get(group, ()))


async def _listeners_elsewhere(layer: PubSubChannelLayer, group: str, *, fresh: bool) -> int:
    """Processes other than this one subscribed to the group (PUBSUB NUMSUB, minus this process's
    own subscription), remembered for REMOTE_RECHECK_SECONDS unless `fresh`."""
    seen = _remote_seen.setdefault(asyncio.get_running_loop(), {})
    now = time.monotonic()
    if not fresh and group in seen and now - seen[group][0] < REMOTE_RECHECK_SECONDS:
        return seen[group][1]
    loop_layer: RedisPubSubLoopLayer = layer._get_layer()
    channel = loop_layer._get_group_channel_name(group)
    shard = loop_layer._get_shard(channel)
    shard._ensure_redis()
    (_name, subscribed), *_ = await shard._redis.pubsub_numsub(channel)
    elsewhere = int(subscribed) - (1 if channel in loop_layer.groups else 0)
    seen[group] = (now, max(0, elsewhere))
    if len(seen) > 10_000:  # groups of finished turns
        seen.clear()
    return max(0, elsewhere)


async def deliver(group: str, message: dict[str, Any], *, fresh: bool = True) -> None:
    """Send a message to every socket in a group: this process's sockets get it directly (no Redis,
    no serializing, no consumer dispatch), and the channel layer carries it only when sockets of
    another process are in the group. `fresh=False` (a streamed delta) may rely on a check made
    up to REMOTE_RECHECK_SECONDS ago."""
    layer = get_channel_layer()
    if not isinstance(layer, PubSubChannelLayer):
        if layer is not None:
            await layer.group_send(group, message)
        return
    for member in members_here(group):
        try:
            handler: Callable[[dict[str, Any]], Awaitable[None]] = getattr(member, get_handler_name(message))
            await handler(message)
        except Exception:  # a socket that is closing must not cost the others their frame
            logger.debug("direct delivery to %s failed", member.channel_name, exc_info=True)
    try:
        if await _listeners_elsewhere(layer, group, fresh=fresh):
            await layer.group_send(group, {**message, ORIGIN_KEY: PROCESS_ORIGIN})
    except REDIS_DOWN:
        # This process's sockets have it; the other tabs resync when Redis is back.
        logger.warning("channel layer unavailable: frame for %s reached this process's sockets only", group)


def is_echo(message: dict[str, Any]) -> bool:
    """A message this process published after delivering it here directly."""
    return message.get(ORIGIN_KEY) == PROCESS_ORIGIN


def group_send_from_sync(group: str, messages: Sequence[dict[str, Any]]) -> None:
    """Send to a group from sync code with whatever layer is configured; no-op without one."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    if isinstance(layer, PubSubChannelLayer):
        layer.group_send_blocking(group, messages)
        return

    async def send_all() -> None:
        for message in messages:
            await layer.group_send(group, message)

    if _loop_running_here():
        # async_to_sync refuses a thread that hosts a running loop: send from a helper thread.
        thread = threading.Thread(target=lambda: asyncio.run(send_all()), daemon=True)
        thread.start()
        thread.join(timeout=5)
    else:
        async_to_sync(send_all)()


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
