"""daphne for a test module that shares one server across its tests (tests/fixtures_browser.py).

Run as `python -m tests.live_server [daphne's options] config.asgi:application`, like core.serve.

The suite empties Redis before every test, but a server process remembers things about that Redis
for a while: that the search index exists (rechecked every few seconds) and each scope's word
counts (a minute). SIGUSR1 makes it forget them, as a newly started server would, and then writes
how many resets it has done to the file named by ENGRAM_TEST_RESET_FILE, so the test knows.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path
from types import FrameType


def _forget(signum: int, frame: FrameType | None) -> None:
    from memory.index import forget_index_cache
    from memory.term_stats import forget_term_counts

    forget_index_cache()
    forget_term_counts()
    path = Path(os.environ["ENGRAM_TEST_RESET_FILE"])
    done = int(path.read_text()) if path.exists() else 0
    partial = path.with_suffix(".tmp")
    partial.write_text(str(done + 1))
    partial.replace(path)  # the test never reads half a number


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    # Imported now, not in the handler: an import there could wait on a lock the server holds.
    import memory.index
    import memory.term_stats  # noqa: F401

    signal.signal(signal.SIGUSR1, _forget)
    sys.argv[0] = "core.serve"
    runpy.run_module("core.serve", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
