"""Start-up checks of the memory engine (core/startup.py runs them before a server or worker starts)."""

from __future__ import annotations

from django.core import checks

from core.redis_client import REDIS_UNREACHABLE
from memory.key_layout import OLD_LAYOUT, old_layout_in_use


def key_layout_check(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """Refuse to start on data in an older key layout: this code would not see it (an empty app) and
    would write beside it under the new names. `make run` moves the keys before it starts anything."""
    try:
        old = old_layout_in_use()
    except REDIS_UNREACHABLE:
        return []  # the process waits for Redis like through any outage; nothing to tell yet
    return [checks.Error(OLD_LAYOUT, id="memory.E001")] if old else []
