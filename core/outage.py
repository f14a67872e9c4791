"""Redis outages: what counts as one, the one sentence users see, and logging it once.

redis-py reconnects by itself on the next command once Redis answers again, so nothing here holds
state about connections: the product only has to fail one request or one chat turn cleanly while
Redis is away, and say so in plain words.
"""

from __future__ import annotations

import logging
import threading

import redis

# BusyLoadingError (Redis still reading its AOF after a restart) is a ConnectionError.
REDIS_DOWN: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)

UNAVAILABLE_MESSAGE = "The memory store is unavailable right now; try again in a moment."
# Seconds a client is asked to wait (Retry-After); the launcher restarts Redis within about one.
RETRY_AFTER_SECONDS = 5


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, REDIS_DOWN)


class OutageLog:
    """One warning when an outage starts and one line when it ends, not one per failed call."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self.down = False
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            first, self.down = not self.down, True
        if first:
            self.logger.warning("%s: Redis is unreachable (%s); retrying until it answers", self.what, exc)

    def ok(self) -> None:
        if not self.down:  # the common case: no lock taken
            return
        with self._lock:
            was, self.down = self.down, False
        if was:
            self.logger.warning("%s: Redis answers again; resumed", self.what)
