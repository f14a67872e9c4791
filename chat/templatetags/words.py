"""Times in plain words for the chat pages: "5 minutes ago", not an epoch second."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def ago(epoch: float | int | str | None) -> str:
    """How long ago an epoch second was: "just now", "5 minutes ago", "2 days ago"."""
    try:
        when = datetime.fromtimestamp(float(epoch or 0), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return "some time ago"
    now = datetime.now(tz=UTC)
    if (now - when).total_seconds() < 60:
        return "just now"
    return f"{timesince(when, now, depth=1)} ago"
