"""One turn at a time per chat session, across every server process.

Several daphne processes behind a balancer is the documented way to scale, and two tabs of one
chat can land on different processes: an in-process lock let their turns interleave in the
history. The lock is redis-py's (SET NX PX with a random token, released and extended by Lua only
while the token matches). Its lease is short (`CHAT_TURN_LOCK_SECONDS`) and renewed while the turn
runs, so a turn may take as long as the model allows, and a process that dies frees its chats
within one lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from django.conf import settings
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from core.redis_client import get_async_redis, key
from memory.keys import safe

logger = logging.getLogger(__name__)

# How often a lease is polled for while another turn holds it.
POLL_SECONDS = 0.05


class ChatBusy(Exception):
    """Another turn of this chat did not finish within the longest a turn can take."""


def lock_key(session_id: str) -> str:
    return key("chat", "turn_lock", safe(session_id))


def longest_turn_seconds() -> float:
    """The most a turn can take: every model call of its tool rounds timing out after all retries,
    plus a lease for the rest (memory reads, saving, tools). A turn waiting for the lock waits
    this long at most."""
    calls = (settings.CHAT_MAX_TOOL_ROUNDS + 1) * (settings.LLM_MAX_RETRIES + 1)
    return float(calls * settings.LLM_TIMEOUT_SECONDS + settings.CHAT_TURN_LOCK_SECONDS)


async def _keep_alive(lock: Lock, lease: float) -> None:
    while True:
        await asyncio.sleep(lease / 3)
        try:
            await lock.reacquire()  # the lease starts again from now
        except LockError:
            logger.warning("a turn lost its lock %s while it ran", lock.name)
            return


@contextlib.asynccontextmanager
async def session_turn(session_id: str, *, wait: float | None = None) -> AsyncIterator[None]:
    """Hold the session's turn lock for the body; raises ChatBusy when it cannot be had in time."""
    lease = settings.CHAT_TURN_LOCK_SECONDS
    lock = get_async_redis().lock(lock_key(session_id), timeout=lease, sleep=POLL_SECONDS, thread_local=False)
    budget = longest_turn_seconds() if wait is None else wait
    if not await lock.acquire(blocking=True, blocking_timeout=budget):
        raise ChatBusy(session_id)
    renew = asyncio.create_task(_keep_alive(lock, lease))
    try:
        yield
    finally:
        renew.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renew
        try:
            await lock.release()
        except LockError:  # it expired (the process stalled past the lease); nothing to free
            logger.warning("turn lock of session %s had expired before its turn ended", session_id)
