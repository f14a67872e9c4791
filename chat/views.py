"""Chat pages: session list, chat page, history partial, the user's own memories, sign-up, and
the login form's lockout answer.

Views stay thin: identity from the request, reads from chat.selectors, writes from chat.services.
Only starting a chat gives an anonymous visitor an identity (and so a session row and cookie):
every other page reads as "nobody yet" without writing anything.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import redis
from axes.helpers import get_client_ip_address
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import ratelimit, selectors, services
from chat.forms import RenameForm, SignupForm
from chat.identity import memory_user_id
from core.llm import get_llm
from memory import working
from memory.types import InvalidInput, MemoryNotFound


def _user_id(request: HttpRequest) -> str | None:
    """Who is asking; None for an anonymous visitor who has not started a chat (nothing is created)."""
    return memory_user_id(request.user, request.session, create=False)


def _owned_session(request: HttpRequest, session_id: str) -> working.Session:
    user_id = _user_id(request)
    if user_id is None:
        raise Http404("no such chat")
    return selectors.owned_session(user_id=user_id, session_id=session_id)


@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    user_id = _user_id(request)
    sessions = selectors.sessions_for(user_id=user_id) if user_id else []
    return render(request, "chat/sessions.html", {"sessions": sessions})


@require_POST
def new_session(request: HttpRequest) -> HttpResponse:
    first_visit = memory_user_id(request.user, request.session, create=False) is None
    # Each cookie-less visitor would be a new identity with its own chat and turn allowances.
    if first_visit and not ratelimit.allow_new_visitor(get_client_ip_address(request) or ""):
        messages.error(
            request,
            "Too many new visitors started chatting from your network in the last hour. "
            "Please try again later, or log in.",
        )
        return render(request, "chat/sessions.html", {"sessions": []}, status=429)
    user_id = memory_user_id(request.user, request.session, create=True)
    assert user_id is not None
    try:
        session = services.start_session(user_id=user_id)
    except services.TooManyChats as exc:
        messages.error(
            request,
            f"You already have {exc.limit} chats, the most Engram keeps for one person. "
            "Delete a chat you no longer need to start a new one.",
        )
        return redirect("chat:home")
    return redirect("chat:session", session_id=session.id)


@require_GET
def chat_page(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _owned_session(request, session_id)
    return render(
        request,
        "chat/chat.html",
        {
            "session": session,
            "messages_": working.get_messages(session_id=session.id),
            "offline": get_llm().mode == "offline",
            "max_chars": _max_chars(),
            "stall_ms": int(settings.CHAT_STALL_RESYNC_SECONDS * 1000),
        },
    )


def _max_chars() -> int:
    from django.conf import settings

    return int(settings.MESSAGE_MAX_CHARS)


@require_GET
def message_log(request: HttpRequest, session_id: str) -> HttpResponse:
    """The rendered history: the page uses it to catch up after a reconnect."""
    session = _owned_session(request, session_id)
    return render(request, "chat/_messages.html", {"messages_": working.get_messages(session_id=session.id)})


@require_POST
def rename_session(request: HttpRequest, session_id: str) -> HttpResponseRedirect:
    session = _owned_session(request, session_id)
    form = RenameForm(request.POST)
    if form.is_valid():
        services.rename_session(session=session, title=form.cleaned_data["title"])
    else:
        messages.error(request, "A title needs 1 to 200 characters.")
    return redirect("chat:home")


@require_POST
def delete_session(request: HttpRequest, session_id: str) -> HttpResponseRedirect:
    session = _owned_session(request, session_id)
    services.delete_session(session=session)
    messages.success(request, "Chat deleted.")
    return redirect("chat:home")


@require_GET
def my_memories(request: HttpRequest) -> HttpResponse:
    user_id = _user_id(request)
    memories = selectors.own_memories_grouped(user_id=user_id) if user_id else selectors.NO_MEMORIES
    return render(request, "chat/my_memories.html", {"memories": memories})


@require_POST
def forget_memory(request: HttpRequest, memory_id: str) -> HttpResponseRedirect:
    try:
        user_id = _user_id(request)
        if user_id is None:
            raise MemoryNotFound(memory_id)
        services.forget_own_memory(user_id=user_id, memory_id=memory_id)
        messages.success(request, "Forgotten.")
    except MemoryNotFound:
        messages.error(request, "That memory does not exist (any more).")
    # An id no memory can have (too long, control characters), or one naming another kind of key.
    except (InvalidInput, redis.ResponseError) as exc:
        raise Http404("There is no memory with that id.") from exc
    return redirect("chat:my_memories")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # Counted only for a form that would create an account, so typos do not use the allowance.
        if not ratelimit.allow_signup(get_client_ip_address(request) or ""):
            form.add_error(
                None,
                "Too many accounts were created from your network in the last hour. Please try again later.",
            )
            return render(request, "registration/signup.html", {"form": form}, status=429)
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(reverse("chat:home"))
    return render(request, "registration/signup.html", {"form": form})


def login_locked_out(request: HttpRequest, *_: Any) -> HttpResponse:
    """axes' answer to a login while locked out (AXES_LOCKOUT_CALLABLE): the login form again,
    saying why and for how long, instead of a bare 403 text."""
    username = request.POST.get("username", "")[:150]
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "next": request.POST.get("next", ""),
        "locked_out": _duration_words(settings.AXES_COOLOFF_TIME),
    }
    return render(request, "registration/login.html", context, status=429)


def _duration_words(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} seconds"
    minutes = -(-seconds // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    return f"{-(-minutes // 60)} hours"
