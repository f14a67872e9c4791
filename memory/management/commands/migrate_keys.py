from typing import Any

from django.core.management.base import BaseCommand, CommandError

from memory.key_layout import WorkersRunning, migrate


class Command(BaseCommand):
    help = (
        "Move Redis keys from before the cluster layout to it, and rebuild the memory index for the "
        "new key prefix (once; later runs do nothing)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Move the keys even while a memory worker's heartbeat is fresh (only when you know "
            "no Engram process is running: one that still is loses what it writes meanwhile).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = migrate(
                say=self.stdout.write if options["verbosity"] > 0 else None, force=options["force"]
            )
        except WorkersRunning as exc:
            raise CommandError(f"Nothing was moved: {exc}") from exc
        if report.renamed or report.users_moved or options["verbosity"] > 1:
            self.stdout.write(
                f"keys: {report.renamed} renamed, {report.users_moved} users moved to the index shards"
            )
        for old in report.left:
            self.stderr.write(f"left in place (its new name is taken): {old}")
