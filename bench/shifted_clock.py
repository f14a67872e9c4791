"""`python -m bench.shifted_clock CLOCK_FILE (-m MODULE | SCRIPT) [ARGS...]`: run a server process whose
wall clock a benchmark sets.

The persona suite replays chats that happened on given days ("next Friday" must resolve against the
day it was said), through a real daphne and a real worker. Both run under this wrapper: a thread
reads CLOCK_FILE (epoch seconds) every 20 ms and moves the process's clock there with time-machine,
ticking on from it. No file, or an empty one, leaves the real clock. Bench only: the product never
imports this.
"""

from __future__ import annotations

import runpy
import sys
import threading
import time
from pathlib import Path

import time_machine

POLL_SECONDS = 0.02


def _follow(clock_file: Path) -> None:
    coordinates = None
    current = ""
    while True:
        try:
            wanted = clock_file.read_text().strip()
        except OSError:
            wanted = ""
        if wanted and wanted != current:
            if coordinates is None:
                coordinates = time_machine.travel(float(wanted), tick=True).start()
            else:
                coordinates.move_to(float(wanted))
            current = wanted
        time.sleep(POLL_SECONDS)


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    clock_file = Path(sys.argv[1])
    threading.Thread(target=_follow, args=(clock_file,), daemon=True, name="shifted-clock").start()
    if sys.argv[2] == "-m":
        module, args = sys.argv[3], sys.argv[4:]
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script, args = sys.argv[2], sys.argv[3:]
        sys.argv = [script, *args]
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
