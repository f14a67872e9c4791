"""The background worker process: heartbeats now; the extraction issue adds the stream consumer."""

from __future__ import annotations

import logging
import os
import socket
import threading

from django.conf import settings

from core.workers import record_heartbeat, remove_heartbeat

logger = logging.getLogger(__name__)


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
        try:
            while not self.stop_event.is_set():
                record_heartbeat(worker_id=self.worker_id)
                self.stop_event.wait(settings.WORKER_HEARTBEAT_SECONDS)
        finally:
            remove_heartbeat(worker_id=self.worker_id)
            logger.info("worker %s stopped", self.worker_id)
