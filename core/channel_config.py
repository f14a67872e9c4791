"""The CHANNEL_LAYERS setting for a Redis URL: built here (no Django imports) so that settings and
`core.redis_client.pointed_at` (tests, benches, the eval) build it the same way."""

from __future__ import annotations


def channel_layers(redis_url: str, prefix: str) -> dict[str, dict[str, object]]:
    host = {
        "address": redis_url,
        # redis-py 8's default 5 s socket timeout is short for a busy server: give reads room.
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        # redis-py 8's async pool refuses a 101st connection; 100 streaming turns need more.
        "max_connections": 1024,
    }
    # channels-redis' pub/sub layer: its core layer loses a frame when another socket's receive is
    # cancelled at the wrong moment (NOTES.md, "Chat load flake"); core/channel_layer.py adds a
    # publish for sync callers. It has no `capacity`: a socket's queue is in process memory.
    return {
        "default": {
            "BACKEND": "core.channel_layer.PubSubChannelLayer",
            "CONFIG": {"hosts": [host], "prefix": prefix},
        }
    }
