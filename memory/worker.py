"""The background worker process: heartbeats, reclaims abandoned work, runs extraction jobs and,
every RETENTION_SWEEP_SECONDS (one worker of all), the retention sweep."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from django.conf import settings

from core.embeddings import warm_up_in_background
from core.workers import record_heartbeat, remove_heartbeat
from memory.extraction import queue
from memory.extraction.pipeline import process_entries
from memory.retention import RetentionReport, run_retention_if_due

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 500


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(self, *, worker_id: str | None = None) -> None:
        self.worker_id = worker_id or default_worker_id()
        self.stop_event = threading.Event()

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        logger.info("worker %s started", self.worker_id)
        warm_up_in_background()
        queue.ensure_group()
        last_beat = last_reclaim = 0.0
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                if now - last_beat >= settings.WORKER_HEARTBEAT_SECONDS:
                    record_heartbeat(worker_id=self.worker_id)
                    self.housekeeping()
                    last_beat = now
                if now - last_reclaim >= settings.EXTRACTION_RECLAIM_IDLE_SECONDS / 2:
                    reclaimed = queue.reclaim_stale(consumer=self.worker_id)
                    if reclaimed:
                        logger.info(
                            "worker %s took over %d abandoned entries", self.worker_id, len(reclaimed)
                        )
                    last_reclaim = now
                self.step()
        finally:
            remove_heartbeat(worker_id=self.worker_id)
            logger.info("worker %s stopped", self.worker_id)

    def housekeeping(self, *, now: float | None = None) -> RetentionReport | None:
        """The retention sweep when it is due (whichever worker asks first runs it)."""
        try:
            return run_retention_if_due(now=now)
        except Exception:  # a failed sweep is retried at the next interval; extraction goes on
            logger.exception("worker %s: retention sweep failed", self.worker_id)
            return None

    def step(self) -> None:
        """One read-and-process round; blocks briefly when there is nothing new."""
        entries = queue.read_entries(consumer=self.worker_id, block_ms=READ_BLOCK_MS)
        if entries:
            outcomes = process_entries(entries, worker_id=self.worker_id)
            if outcomes:
                logger.info("worker %s: %s", self.worker_id, dict(outcomes))
