from typing import Any

from django.core.management.base import BaseCommand

from core import launcher


class Command(BaseCommand):
    help = (
        "Start the embedded Redis, SERVER_PROCESSES daphne processes on one port (one per core by "
        "default) and one memory worker; Ctrl-C stops all of them (`make run`)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        code = launcher.run()
        if code:
            raise SystemExit(code)
