"""A session's page (messages and retrieval traces) and the sandbox (what a message would recall)."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods
from ulid import ULID

from inspector.forms import SandboxForm
from inspector.permissions import view_required
from inspector.presenters import as_datetime, duration_text, trace_view
from inspector.views.common import is_partial, session_or_404, valid_user_id
from memory import working
from memory.prompt import build_prompt
from memory.traces import session_traces
from memory.types import InvalidInput


@view_required
@require_http_methods(["GET", "POST"])
def sandbox(request: HttpRequest, user_id: str) -> HttpResponse:
    """What would be retrieved for this message, as this user, right now. Writes nothing."""
    user_id = valid_user_id(user_id)
    form = SandboxForm(request.POST or None, initial={"session_id": request.GET.get("session", "")})
    context: dict[str, Any] = {
        "user_id": user_id,
        "form": form,
        "sessions": working.list_sessions(user_id=user_id),
        "built": None,
    }
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            session_id = form.cleaned_data["session_id"]
            if session_id:
                try:
                    session = working.get_session(session_id=session_id)
                except (InvalidInput, redis.ResponseError):
                    session = None
                if session is None or session.user_id != user_id:
                    form.add_error("session_id", "This user has no live session with that id.")
            if form.is_valid():
                try:
                    built = build_prompt(
                        user_id=user_id,
                        # A fresh id names no session: no summary, no recent messages.
                        session_id=session_id or f"sandbox-{ULID()}",
                        message=form.cleaned_data["message"],
                        save_trace=False,
                    )
                except InvalidInput as exc:
                    form.add_error(None, str(exc))
                else:
                    status = 200
                    context["built"] = built
                    context["trace"] = trace_view(built.trace)
                    context["fresh_session"] = not session_id
    if is_partial(request):
        return render(request, "inspector/_sandbox_result.html", context)
    return render(request, "inspector/sandbox.html", context, status=status)


@view_required
@require_GET
def session_page(request: HttpRequest, session_id: str) -> HttpResponse:
    session = session_or_404(session_id)
    traces = [trace_view(t) for t in reversed(session_traces(session_id=session.id))]
    context = {
        "session": session,
        "created": as_datetime(session.created_at),
        "updated": as_datetime(session.updated_at),
        "messages_": [
            {"message": m, "at": as_datetime(m.at)} for m in working.get_messages(session_id=session.id)
        ],
        "ttl_text": duration_text(session.ttl_seconds),
        "token_limit": settings.WORKING_MEMORY_TOKEN_LIMIT,
        "prompt_budget": settings.PROMPT_TOKEN_BUDGET,
        "traces": traces,
    }
    return render(request, "inspector/session.html", context)
