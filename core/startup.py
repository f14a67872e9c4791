"""What a process checks before it serves: the daphne servers (core/serve.py) and the memory worker
(`manage.py memory_worker`), however they are started (`make run`, systemd, a container).

The checks are Django system checks tagged STARTUP that the app owning them registers as deployment
checks (memory: data still in an older key layout), so ordinary commands (`migrate`, `migrate_keys`
itself) do not run them, and `manage.py check --deploy` does. A refused start says why in one plain
line per problem.
"""

from __future__ import annotations

from django.core import checks

STARTUP = "engram-startup"


def startup_problems() -> list[str]:
    """Why this process must not start (empty when it may)."""
    found = checks.run_checks(include_deployment_checks=True, tags=[STARTUP])
    return [str(message.msg) for message in found if message.is_serious()]
