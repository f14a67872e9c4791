from typing import Any

from django.core.management.base import BaseCommand

from memory.key_layout import migrate


class Command(BaseCommand):
    help = "Move Redis keys from before the cluster layout to it (once; later runs do nothing)."

    def handle(self, *args: Any, **options: Any) -> None:
        report = migrate()
        if report.renamed or report.users_moved or options["verbosity"] > 1:
            self.stdout.write(
                f"keys: {report.renamed} renamed, {report.users_moved} users moved to the index shards"
            )
        for old in report.left:
            self.stderr.write(f"left in place (its new name is taken): {old}")
