"""The configured channel layer delivers every frame, also while other sockets of the process close.

channels-redis' core layer lost a message now and then when receives of other channels were
cancelled at the moment it arrived (NOTES.md, "Chat load flake"): the socket that closed held the
process-wide receive lock and took the popped message with it. The loss is a race, so the test
repeats the scene until a message goes missing or TRIALS clean runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from channels.layers import get_channel_layer
from redis.exceptions import ConnectionError as RedisConnectionError

from core.channel_layer import PubSubChannelLayer
from core.embedded_redis import EmbeddedRedis, free_port
from memory.events import FEED_GROUP, publish

TRIALS = 40
CLOSING_SOCKETS = 99
FRAMES = 20
GROUP = "layer-test"


async def _receive_forever(layer: Any, channel: str, into: list[dict[str, Any]] | None = None) -> None:
    while True:
        message = await layer.receive(channel)
        if into is not None:
            into.append(message)


async def _frames_delivered_while_others_close(layer: Any) -> list[int]:
    """One streaming socket and CLOSING_SOCKETS others in one loop; the others close during the stream."""
    streaming = await layer.new_channel()
    await layer.group_add(GROUP, streaming)
    others = [await layer.new_channel() for _ in range(CLOSING_SOCKETS)]
    received: list[dict[str, Any]] = []
    # The closing sockets' receives start first: one of them holds the layer's read when they close.
    receivers = [asyncio.ensure_future(_receive_forever(layer, channel)) for channel in others]
    collector = asyncio.ensure_future(_receive_forever(layer, streaming, received))
    await asyncio.sleep(0.1)  # every receive is waiting, one of them inside the layer's read

    try:
        closing = iter(receivers)
        for n in range(FRAMES):
            await layer.group_send(GROUP, {"type": "chat.frame", "n": n})
            # Sockets close right after a frame went out: while its reply may still be on its way.
            for task in itertools.islice(closing, CLOSING_SOCKETS // FRAMES + 1):
                task.cancel()
            await asyncio.sleep(0.002)
        for _ in range(400):  # up to 8 s: a late frame is not a lost one
            if len(received) >= FRAMES:
                break
            await asyncio.sleep(0.02)
    finally:
        collector.cancel()
        # channels-redis' cancelled receives may wait out their blocking pop (5 s) before ending.
        await asyncio.wait([collector, *receivers], timeout=8)
        await layer.group_discard(GROUP, streaming)
    return [message["n"] for message in received]


@pytest.mark.slow
async def test_no_frame_is_lost_when_other_sockets_close_during_a_stream() -> None:
    layer = get_channel_layer()
    for trial in range(TRIALS):
        delivered = await _frames_delivered_while_others_close(layer)
        assert delivered == list(range(FRAMES)), f"trial {trial + 1}: frames {delivered}"


def test_memory_events_published_from_sync_code_share_one_connection(redis_client: redis.Redis) -> None:
    """The worker publishes every mutation from sync code: that must not cost a Redis connection each."""
    ready, events = threading.Event(), 30
    received: list[dict[str, Any]] = []

    async def inspector_page() -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(FEED_GROUP, channel)
        await asyncio.sleep(0.1)  # the subscription is in place
        ready.set()
        for _ in range(events):
            received.append(await asyncio.wait_for(layer.receive(channel), timeout=10))

    page = threading.Thread(target=asyncio.run, args=(inspector_page(),))
    page.start()
    assert ready.wait(timeout=10)
    publish([{"memory_id": "warm-up"}])  # the process-wide client connects once
    before = int(redis_client.info("stats")["total_connections_received"])
    for n in range(1, events):
        publish([{"memory_id": f"m{n}"}])
    opened = int(redis_client.info("stats")["total_connections_received"]) - before
    page.join(timeout=15)
    assert [m["event"]["memory_id"] for m in received] == ["warm-up"] + [f"m{n}" for n in range(1, events)]
    assert {m["type"] for m in received} == {"memory.mutation"}
    assert opened <= 1, f"{events - 1} events opened {opened} connections"


async def test_a_socket_gets_frames_again_after_redis_restarts(tmp_path: Path) -> None:
    """A Redis restart drops every subscription: the layer (redis-py's pub/sub) subscribes again by itself."""
    server = EmbeddedRedis(port=free_port(), data_dir=tmp_path).start()
    layer = PubSubChannelLayer(hosts=[{"address": server.url}], prefix="restart-test")
    received: list[dict[str, Any]] = []
    try:
        channel = await layer.new_channel()
        await layer.group_add(GROUP, channel)
        collector = asyncio.ensure_future(_receive_forever(layer, channel, received))
        await asyncio.sleep(0.1)
        await layer.group_send(GROUP, {"type": "chat.frame", "n": 0})
        await asyncio.sleep(0.1)
        assert [m["n"] for m in received] == [0]

        assert server.process is not None
        server.process.kill()  # no goodbye to the clients
        server.process.wait(timeout=5)
        server.process = None
        await asyncio.sleep(0.5)
        server.start()
        back = time.monotonic()
        n = 0
        while len(received) < 2 and time.monotonic() - back < 10:
            n += 1
            with contextlib.suppress(RedisConnectionError):  # the first send may find its connection gone
                await layer.group_send(GROUP, {"type": "chat.frame", "n": n})
            await asyncio.sleep(0.2)
        assert len(received) >= 2, "no frame arrived within 10 s of Redis answering again"
        collector.cancel()
        await asyncio.wait([collector], timeout=5)
    finally:
        await layer.flush()
        server.stop()
