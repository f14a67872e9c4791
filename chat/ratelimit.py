"""A per-user limit on chat turns: a fixed one-minute window counted in Redis."""

from __future__ import annotations

import time

from django.conf import settings

from core.redis_client import get_async_redis, key
from memory.keys import safe


async def allow_turn(user_id: str) -> bool:
    window = int(time.time() // 60)
    counter = key("ratelimit", "turns", safe(user_id), str(window))
    client = get_async_redis()
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(counter)
        pipe.expire(counter, 120)
        count, _ = await pipe.execute()
    return int(count) <= settings.CHAT_RATE_LIMIT_PER_MINUTE
