"""`make eval`: the LoCoMo retrieval evaluation in a private embedded Redis (see memory/locomo.py)."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from memory import locomo

DEFAULT_DATA = settings.BASE_DIR.parent / "shared" / "data" / "locomo" / "locomo10.json"
DEFAULT_OUT = settings.BASE_DIR / "bench" / "results"


class Command(BaseCommand):
    help = (
        "Evaluate memory retrieval on LoCoMo (evidence recall@5/10/25, context tokens, latency) "
        "and write bench/results/locomo.json and locomo.md (and rebuild BENCHMARKS.md)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Path to locomo10.json.")
        parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Folder for the results.")

    def handle(self, *args: Any, **options: Any) -> None:
        data_path: Path = options["data"].resolve()
        if not data_path.is_file():
            raise CommandError(
                f"LoCoMo data not found at {data_path}. Expected ../shared/data/locomo/locomo10.json next "
                "to the project (see ../shared/data/README.md), or pass --data PATH."
            )
        with locomo.private_redis():
            evaluation = locomo.evaluate(data_path, progress_factory=locomo.Progress)
        json_path, md_path = locomo.write_report(evaluation.report, options["out"])
        self.stdout.write(locomo.render_summary(evaluation.report))
        self.stdout.write(f"wrote {json_path} and {md_path}")
        if options["out"].resolve() == DEFAULT_OUT.resolve():
            # The product does not import bench: `make eval` (bench.eval) rebuilds BENCHMARKS.md.
            self.stdout.write("run `make eval` to rebuild BENCHMARKS.md from the results")
