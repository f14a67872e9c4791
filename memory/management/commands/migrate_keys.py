from typing import Any

from django.core.management.base import BaseCommand

from memory.key_layout import migrate


class Command(BaseCommand):
    help = (
        "Move Redis keys from before the cluster layout to it, and rebuild the memory index for the "
        "new key prefix (once; later runs do nothing)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = migrate(say=self.stdout.write if options["verbosity"] > 0 else None)
        if report.renamed or report.users_moved or options["verbosity"] > 1:
            self.stdout.write(
                f"keys: {report.renamed} renamed, {report.users_moved} users moved to the index shards"
            )
        for old in report.left:
            self.stderr.write(f"left in place (its new name is taken): {old}")
