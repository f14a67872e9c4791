"""Fixed-window limits counted in Redis: chat turns per user per minute; sign-ups and new anonymous
visitors per IP per hour."""

from __future__ import annotations

import time

from django.conf import settings

from core.redis_client import get_async_redis, get_redis, key
from memory.keys import safe


def _counter(bucket: str, who: str, window_seconds: int) -> str:
    window = int(time.time() // window_seconds)
    return key("ratelimit", bucket, safe(who), str(window))


async def allow_turn(user_id: str) -> bool:
    counter = _counter("turns", user_id, 60)
    client = get_async_redis()
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(counter)
        pipe.expire(counter, 120)
        count, _ = await pipe.execute()
    return int(count) <= settings.CHAT_RATE_LIMIT_PER_MINUTE


def _allow_per_hour(bucket: str, client_ip: str, limit: int) -> bool:
    counter = _counter(bucket, client_ip or "unknown", 3600)
    with get_redis().pipeline(transaction=True) as pipe:
        pipe.incr(counter)
        pipe.expire(counter, 2 * 3600)
        count, _ = pipe.execute()
    return int(count) <= limit


def allow_signup(client_ip: str) -> bool:
    """Count one account creation from this address; False once the hour's allowance is used."""
    return _allow_per_hour("signups", client_ip, settings.SIGNUP_RATE_LIMIT_PER_HOUR)


def allow_new_visitor(client_ip: str) -> bool:
    """Count one new anonymous identity (a first chat) from this address; False past the hour's."""
    return _allow_per_hour("visitors", client_ip, settings.ANON_VISITORS_PER_IP_PER_HOUR)
