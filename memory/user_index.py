"""Reads of the users index (every user id seen, scored by last activity), which is split over
`keys.USER_SHARDS` sorted sets; writers ZADD/ZREM on `keys.users(user_id)` directly."""

from __future__ import annotations

import heapq

from core.redis_client import get_redis
from memory import keys
from memory.records import as_text


def last_activity(*, user_id: str) -> float | None:
    score = get_redis().zscore(keys.users(user_id), user_id)
    return float(score) if score is not None else None


def count() -> int:
    with get_redis().pipeline(transaction=False) as pipe:
        for shard in keys.user_shards():
            pipe.zcard(shard)
        return sum(int(n) for n in pipe.execute())


def all_user_ids() -> list[str]:
    with get_redis().pipeline(transaction=False) as pipe:
        for shard in keys.user_shards():
            pipe.zrange(shard, 0, -1)
        return [as_text(u) for members in pipe.execute() for u in members]


def most_recent(*, offset: int = 0, limit: int = 50) -> list[tuple[str, float]]:
    """User ids with their last activity, most recent first (ties: by id, like one sorted set)."""
    if limit <= 0:
        return []
    with get_redis().pipeline(transaction=False) as pipe:
        for shard in keys.user_shards():
            pipe.zrevrange(shard, 0, offset + limit - 1, withscores=True)
        rows = [(as_text(u), float(score)) for replies in pipe.execute() for u, score in replies]
    ranked = heapq.nsmallest(offset + limit, rows, key=lambda row: (-row[1], _descending(row[0])))
    return ranked[offset:]


def _descending(user_id: str) -> tuple[int, ...]:
    # ZREVRANGE orders equal scores by member, highest first: invert the bytes to sort ascending.
    return (*(255 - b for b in user_id.encode()), 256)
