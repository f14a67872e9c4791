"""The product's channel layer: channels-redis' pub/sub layer, plus a publish for sync code.

channels-redis' core layer loses a message when a receive holding its process-wide read is
cancelled (a socket closing while a frame for another socket is on its way; NOTES.md). The pub/sub
layer reads every subscription on one task per event loop and hands messages to per-channel queues,
so a cancelled receive only drops its own queue.

Its connections belong to one event loop, and `async_to_sync` runs each call on a new loop: a sync
caller (the extraction worker publishing memory events, a sign-out) would open and close a Redis
connection per call. `group_send_blocking` publishes in the layer's own format through the
process-wide pooled client instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer

from core.redis_client import get_redis


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
