"""`python manage.py memory_index [status|rebuild]`: the memory index's schema version, and the
build-and-switch to the version this code defines (see memory/index.py)."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.redis_client import REDIS_UNREACHABLE
from memory import index


class Command(BaseCommand):
    help = (
        "status: which version of the memory index serves searches and whether a rebuild is needed. "
        "rebuild: build the current version beside it, wait until it holds every memory, switch "
        "searches over and drop the old index (memories are kept). Running it again does nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", nargs="?", choices=["status", "rebuild"], default="status")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._run(options["action"])
        except REDIS_UNREACHABLE as exc:
            start = " (`make run` starts the embedded one)" if settings.REDIS_EMBEDDED else ""
            raise CommandError(
                f"Redis is not reachable, so the index was not touched: start it first{start}."
            ) from exc

    def _run(self, action: str) -> None:
        if action == "rebuild":
            index.rebuild(say=self.stdout.write)
            return
        state = index.index_state()
        if state is None:
            self.stdout.write(
                f"There is no memory index yet; the first memory written creates version "
                f"{index.INDEX_VERSION}."
            )
            return
        self.stdout.write(
            f"The memory index {state['serving']} is version {state['version']}, "
            f"holding {index.memories_phrase(state['documents'])}, {state['percent_indexed']:.0f}% indexed."
        )
        if state["vectors_to_convert"]:
            self.stdout.write(
                "Some memories hold vectors of another type (float32, from an older release), so the "
                "index left them out and searches do not find them: run `python manage.py memory_index "
                "rebuild` to convert them."
            )
        elif state["rebuild_needed"]:
            self.stdout.write(
                f"This code defines version {state['current_version']}: run "
                "`python manage.py memory_index rebuild` to build it (searches keep working meanwhile)."
            )
        else:
            self.stdout.write("It is the version this code defines; nothing to do.")
