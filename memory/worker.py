"""The background worker process: heartbeats, reclaims abandoned work, runs extraction jobs."""

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

    def step(self) -> None:
        """One read-and-process round; blocks briefly when there is nothing new."""
        entries = queue.read_entries(consumer=self.worker_id, block_ms=READ_BLOCK_MS)
        if entries:
            outcomes = process_entries(entries, worker_id=self.worker_id)
            if outcomes:
                logger.info("worker %s: %s", self.worker_id, dict(outcomes))
