"""The background worker process: heartbeats, reclaims abandoned work, runs extraction jobs and,
every RETENTION_SWEEP_SECONDS (one worker of all), the retention sweep.

A worker's name is stable (host + slot, or --worker-id): restarted, it finds its own pending
entries (and its own session locks) under that name and carries on, instead of leaving them to be
reclaimed. It outlives Redis outages: it waits with capped backoff and resumes by itself.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from contextlib import suppress

from django.conf import settings

from core.embeddings import warm_up_in_background
from core.redis_client import REDIS_UNREACHABLE
from core.workers import record_heartbeat, record_outage, remove_heartbeat
from memory.extraction import queue
from memory.extraction.pipeline import process_entries
from memory.retention import RetentionReport, run_retention_if_due

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 500
# Waits between tries while Redis is unreachable: doubling from the first to the last.
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0


def default_worker_id(*, slot: int = 1) -> str:
    """The same name every time this slot's worker starts on this host (not the pid: a restarted
    worker must find its own pending entries). Two workers on one host need different slots."""
    return f"{socket.gethostname()}-worker-{slot}"


class Worker:
    def __init__(self, *, worker_id: str | None = None, slot: int = 1) -> None:
        self.worker_id = worker_id or default_worker_id(slot=slot)
        # This process's life under that name: locks held by earlier lives are free for anyone.
        self.life = uuid.uuid4().hex[:12]
        self.stop_event = threading.Event()
        # Wall-clock start of the current Redis outage (None while Redis answers), and how many.
        self.outage_since: float | None = None
        self.outages = 0
        self._group_ready = False
        self._last_beat = self._last_reclaim = 0.0

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        logger.info("worker %s started", self.worker_id)
        warm_up_in_background()
        # The first round reads this worker's own pending entries (a restart resumes them) before
        # it reclaims anyone else's.
        self._last_reclaim = time.monotonic()
        delay = RETRY_FIRST_SECONDS
        try:
            while not self.stop_event.is_set():
                try:
                    self.round()
                except REDIS_UNREACHABLE as exc:
                    self._redis_lost(exc)
                    self.stop_event.wait(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
                    continue
                delay = RETRY_FIRST_SECONDS
                if self.outage_since is not None:
                    self._redis_back()
        finally:
            with suppress(*REDIS_UNREACHABLE):  # the status page drops a silent heartbeat anyway
                remove_heartbeat(worker_id=self.worker_id)
            logger.info("worker %s stopped", self.worker_id)

    def round(self) -> None:
        """One pass of the loop: heartbeat and upkeep when due, then read and process."""
        if not self._group_ready:
            queue.ensure_group()
            self._group_ready = True
        now = time.monotonic()
        if now - self._last_beat >= settings.WORKER_HEARTBEAT_SECONDS:
            record_heartbeat(worker_id=self.worker_id)
            # Each beat, not once: a Redis that lost its data must learn it again.
            queue.register_life(worker_id=self.worker_id, life=self.life)
            self.housekeeping()
            self._last_beat = now
        if now - self._last_reclaim >= settings.EXTRACTION_RECLAIM_IDLE_SECONDS / 2:
            self.take_over_abandoned()
            self._last_reclaim = now
        self.step()

    def take_over_abandoned(self) -> None:
        """Entries of workers gone for longer than the reclaim time become ours (not a failure),
        then the names of consumers that hold nothing and were not seen for as long are removed."""
        reclaimed = queue.reclaim_stale(consumer=self.worker_id)
        if reclaimed:
            logger.info("worker %s took over %d abandoned entries", self.worker_id, len(reclaimed))
        # Turns a dead process stored without announcing (queue.enqueue_turn: two steps on a cluster).
        queue.announce_stranded(older_than=10 * settings.EXTRACTION_RECLAIM_IDLE_SECONDS)
        removed = queue.remove_idle_consumers(
            idle_seconds=settings.EXTRACTION_RECLAIM_IDLE_SECONDS, keep=self.worker_id
        )
        if removed:
            logger.info("worker %s removed idle consumers %s", self.worker_id, ", ".join(removed))
            queue.bump("consumers_removed", len(removed))

    def housekeeping(self, *, now: float | None = None) -> RetentionReport | None:
        """The retention sweep when it is due (whichever worker asks first runs it)."""
        try:
            return run_retention_if_due(now=now)
        except REDIS_UNREACHABLE:
            raise  # the loop waits for Redis; the sweep runs at a later beat
        except Exception:  # a failed sweep is retried at the next interval; extraction goes on
            logger.exception("worker %s: retention sweep failed", self.worker_id)
            return None

    def step(self) -> None:
        """One read-and-process round; blocks briefly when there is nothing new."""
        entries = queue.read_entries(consumer=self.worker_id, block_ms=READ_BLOCK_MS)
        if entries:
            outcomes = process_entries(entries, worker_id=self.worker_id, life=self.life)
            if outcomes:
                logger.info("worker %s: %s", self.worker_id, dict(outcomes))

    def _redis_lost(self, exc: Exception) -> None:
        if self.outage_since is None:  # said once per outage, not once per try
            self.outage_since = time.time()
            self.outages += 1
            message = "worker %s: Redis is unreachable (%s); retrying until it answers"
            logger.warning(message, self.worker_id, exc)

    def _redis_back(self) -> None:
        started, self.outage_since = self.outage_since or time.time(), None
        ended = time.time()
        logger.warning(
            "worker %s: Redis answers again after %.1f s; resuming", self.worker_id, ended - started
        )
        try:
            record_outage(worker_id=self.worker_id, started_at=started, ended_at=ended)
            record_heartbeat(worker_id=self.worker_id)
            self._last_beat = time.monotonic()
        except REDIS_UNREACHABLE:
            pass  # gone again: the next round notices
