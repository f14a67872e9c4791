import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.startup import startup_problems
from memory.worker import Worker


class Command(BaseCommand):
    help = "Run one background memory worker (start as many as you like; they share the work)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--worker-id",
            default=None,
            help="Name in the consumer group and on the staff status page (default: host-worker-<slot>). "
            "Keep it the same across restarts: a restarted worker resumes the entries it held.",
        )
        parser.add_argument(
            "--slot",
            type=int,
            default=1,
            help="Which worker of this host this is (names it host-worker-<slot>; give each its own).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        problems = startup_problems()
        if problems:
            raise CommandError("; ".join(problems))
        worker = Worker(worker_id=options["worker_id"], slot=options["slot"])

        def request_stop(signum: int, frame: FrameType | None) -> None:
            worker.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, request_stop)
        worker.run()
