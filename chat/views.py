"""Chat pages: session list, chat page, history partial, the user's own memories, sign-up, logout
and the login form's lockout answer.

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
from django.contrib.auth import login, logout
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import ratelimit, selectors, services
from chat.forms import RenameForm, SignupForm
from chat.identity import memory_user_id
from chat.phrasing import memory_sentence
from core.llm import get_llm
from memory import working
from memory.policy import NOT_YOUR_DELETION
from memory.types import InvalidInput, MemoryLocked, MemoryNotFound


def _user_id(request: HttpRequest) -> str | None:
    """Who is asking; None for an anonymous visitor who has not started a chat (nothing is created)."""
    return memory_user_id(request.user, request.session, create=False)


def _owned_session(request: HttpRequest, session_id: str) -> working.Session:
    user_id = _user_id(request)
    if user_id is None:
        raise Http404("no such chat")
    return selectors.owned_session(user_id=user_id, session_id=session_id)


def _page_number(request: HttpRequest) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    user_id = _user_id(request)
    page = (
        selectors.sessions_page(user_id=user_id, page=_page_number(request))
        if user_id
        else selectors.NO_SESSIONS
    )
    return render(request, "chat/sessions.html", {"sessions": page.sessions, "page": page})


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
        context = {"sessions": [], "page": selectors.NO_SESSIONS}
        return render(request, "chat/sessions.html", context, status=429)
    user_id = memory_user_id(request.user, request.session, create=True)
    assert user_id is not None
    try:
        session = services.open_new_chat(user_id=user_id)
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
    return int(settings.MESSAGE_MAX_CHARS)


@require_GET
def message_log(request: HttpRequest, session_id: str) -> HttpResponse:
    """The rendered history: the page uses it to catch up after a reconnect."""
    session = _owned_session(request, session_id)
    return render(request, "chat/_messages.html", {"messages_": working.get_messages(session_id=session.id)})


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    allowed = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
    return target if target and allowed else default


@require_POST
def rename_session(request: HttpRequest, session_id: str) -> HttpResponse:
    """Rename a chat. htmx swaps in the title partial (with the error, if any); without JS the
    form posts and the page it came from is shown again."""
    session = _owned_session(request, session_id)
    form = RenameForm(request.POST)
    if form.is_valid():
        services.rename_session(session=session, title=form.cleaned_data["title"])
        session = _owned_session(request, session_id)
    error = "" if form.is_valid() else " ".join(str(e) for e in form.errors.get("title", ["No title given."]))
    if request.headers.get("HX-Request"):
        place = "list" if request.POST.get("place") == "list" else "chat"
        next_url = _safe_next(request, reverse("chat:home"))
        context = {"session": session, "place": place, "rename_error": error, "next_url": next_url}
        # 200 either way: htmx swaps only successful answers, and the error belongs in the form.
        return render(request, "chat/_title.html", context)
    if error:
        messages.error(request, error)
    return redirect(_safe_next(request, reverse("chat:home")))


@require_POST
def delete_session(request: HttpRequest, session_id: str) -> HttpResponseRedirect:
    session = _owned_session(request, session_id)
    services.delete_session(session=session)
    messages.success(request, "Chat deleted.")
    return redirect("chat:home")


# What the memories page remembers of the last forget, for its Undo (popped when shown).
FORGOTTEN_SESSION_KEY = "chat:forgotten"


@require_GET
def my_memories(request: HttpRequest) -> HttpResponse:
    user_id = _user_id(request)
    highlight = request.GET.get("memory", "")[:100]
    memories = (
        selectors.own_memories_grouped(user_id=user_id, highlight=highlight)
        if user_id
        else selectors.NO_MEMORIES
    )
    undo = request.session.pop(FORGOTTEN_SESSION_KEY, None) if user_id else None
    forgotten = selectors.forgotten_memory(user_id=user_id, undo=undo) if user_id and undo else None
    # A link from "Memories used" to a memory the page cannot show says what became of it.
    missing = None
    if highlight and not memories.highlight:
        missing = (
            selectors.missing_link(user_id=user_id, memory_id=highlight)
            if user_id
            else selectors.MissingLink(forgotten_on="", undo=None)
        )
    recent = selectors.recently_forgotten(user_id=user_id) if user_id else []
    context = {
        "memories": memories,
        "forgotten": forgotten,
        "missing": missing,
        # The one just forgotten has its own Undo box at the top.
        "recently_forgotten": [f for f in recent if not forgotten or f.memory.id != forgotten.memory.id],
        "grace": _duration_words(timedelta(seconds=settings.SOFT_DELETE_GRACE_SECONDS)),
        "can_undo": settings.SOFT_DELETE_GRACE_SECONDS > 0,
    }
    return render(request, "chat/my_memories.html", context)


@require_POST
def forget_memory(request: HttpRequest, memory_id: str) -> HttpResponseRedirect:
    try:
        user_id = _user_id(request)
        if user_id is None:
            raise MemoryNotFound(memory_id)
        memory, sources = services.forget_own_memory(user_id=user_id, memory_id=memory_id)
        # Ids only: the words stay in the memory engine, whose retention forgets them for good.
        request.session[FORGOTTEN_SESSION_KEY] = {"id": memory.id, "sources": sources}
    except MemoryNotFound:
        messages.error(request, "That memory does not exist (any more).")
    # An id no memory can have (too long, control characters), or one naming another kind of key.
    except (InvalidInput, redis.ResponseError) as exc:
        raise Http404("There is no memory with that id.") from exc
    return redirect("chat:my_memories")


@require_POST
def restore_memory(request: HttpRequest, memory_id: str) -> HttpResponseRedirect:
    """Undo a forget (a plain form, so it works without JS)."""
    try:
        user_id = _user_id(request)
        if user_id is None:
            raise MemoryNotFound(memory_id)
        sources = request.POST.getlist("source")[:50]
        memory = services.restore_own_memory(user_id=user_id, memory_id=memory_id, sources=sources)
        messages.success(request, f"Restored: {memory_sentence(memory)} Engram uses it again.")
    except MemoryNotFound:
        messages.error(request, "That memory can no longer be restored: it was removed for good.")
    except MemoryLocked as exc:
        if str(exc) == NOT_YOUR_DELETION:
            messages.error(
                request, "You can only undo what you forgot yourself. That memory was not restored."
            )
        else:
            messages.error(request, "Support has locked that memory, so it cannot be restored here.")
    except (InvalidInput, redis.ResponseError) as exc:
        raise Http404("There is no memory with that id.") from exc
    url = reverse("chat:my_memories")
    return redirect(f"{url}?memory={memory_id}#memory-{memory_id}")


@require_POST
def log_out(request: HttpRequest) -> HttpResponseRedirect:
    """Sign out and land on the login page saying so (Django's default is the admin's page)."""
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect(settings.LOGOUT_REDIRECT_URL)


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
    hours = -(-minutes // 60)
    if hours < 48:
        return f"{hours} hours"
    return f"{-(-hours // 24)} days"
