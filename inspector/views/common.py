"""Helpers every inspector page shares: ids from the URL, 404s, paging, the way back, the live feed panel."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import redis
from django.forms import Form
from django.http import Http404, HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

from inspector import selectors as inspector_selectors
from inspector.consumers import FEED_PATH
from memory import working
from memory.query import validate_scope_id
from memory.selectors import get_memory, memory_history, recent_events
from memory.types import InvalidInput, Memory, MemoryNotFound


def is_partial(request: HttpRequest) -> bool:
    """An htmx request for a fragment (not htmx restoring a whole page from its history)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not bool(getattr(htmx, "history_restore_request", False))


def valid_user_id(user_id: str) -> str:
    try:
        return validate_scope_id(user_id, name="user_id")
    except InvalidInput as exc:
        raise Http404("no such user") from exc


def memory_or_404(memory_id: str) -> Memory:
    try:
        return get_memory(memory_id=memory_id, include_deleted=True)
    # A hostile id can name a key of another type (WRONGTYPE): that is "not a memory" too.
    except (InvalidInput, MemoryNotFound, redis.ResponseError) as exc:
        raise Http404("no such memory") from exc


def session_or_404(session_id: str) -> working.Session:
    try:
        session = working.get_session(session_id=session_id)
    except (InvalidInput, redis.ResponseError) as exc:
        raise Http404("no such session") from exc
    if session is None:
        raise Http404("no such session (it may have expired)")
    return session


def page_number(raw: str | None) -> int:
    try:
        return max(1, min(10_000, int(raw or 1)))
    except ValueError:
        return 1


def next_url(request: HttpRequest, *, default: str) -> str:
    """Where a plain POST returns to: the page it came from, if that is a local URL."""
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def form_error(form: Form) -> str:
    parts = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        text = " ".join(str(e) for e in errors)
        parts.append(f"{label}: {text}" if label and name != "__all__" else text)
    return " ".join(parts) or "Please check the form."


FEED_PREFILL = 10


def feed_context(*, user_id: str = "", memory_id: str = "") -> dict[str, Any]:
    """The feed panel: its socket's filter, and the latest changes to start from (on a memory
    page, that memory's own latest changes: the panel never says "no changes" beside a history)."""
    params = {k: v for k, v in (("user_id", user_id), ("memory_id", memory_id)) if v}
    if memory_id:
        events = [e.as_dict() for e in reversed(memory_history(memory_id=memory_id)[-FEED_PREFILL:])]
    else:
        events = recent_events(user_id=user_id, limit=FEED_PREFILL)
    return {
        "feed_path": FEED_PATH,
        "feed_query": urlencode(params),
        "feed_entries": inspector_selectors.feed_entries(events),
    }
