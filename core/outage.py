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


class QuietOutageFilter(logging.Filter):
    """For libraries that log every failed retry with a traceback (channels-redis' pub/sub reader logs
    one a second while Redis is away): the first one as one plain line, then nothing for a while."""

    def __init__(self, name: str = "", quiet_seconds: float = 60.0) -> None:
        super().__init__(name)
        self.quiet_seconds = quiet_seconds
        self._last: dict[tuple[str, str], float] = {}

    def reset(self) -> None:
        """Forget what was logged (the next outage is logged again at once)."""
        self._last.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not is_outage(exc):
            return True
        where = (record.name, str(record.msg))
        now = record.created
        if now - self._last.get(where, float("-inf")) < self.quiet_seconds:
            return False
        self._last[where] = now
        record.msg = (
            f"{record.getMessage()}: Redis is unreachable ({exc}); retrying (repeats not logged for %ds)"
        )
        record.args = (int(self.quiet_seconds),)
        record.exc_info = None
        record.exc_text = None
        return True
