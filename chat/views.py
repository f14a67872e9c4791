"""Chat pages: session list, chat page, history partial, the user's own memories, sign-up.

Views stay thin: identity from the request, reads from chat.selectors, writes from chat.services.
"""

from __future__ import annotations

import redis
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import selectors, services
from chat.forms import RenameForm, SignupForm
from chat.identity import memory_user_id
from core.llm import get_llm
from memory import working
from memory.types import InvalidInput, MemoryNotFound


def _user_id(request: HttpRequest) -> str:
    user_id = memory_user_id(request.user, request.session)
    assert user_id is not None
    return user_id


@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    sessions = selectors.sessions_for(user_id=_user_id(request))
    return render(request, "chat/sessions.html", {"sessions": sessions})


@require_POST
def new_session(request: HttpRequest) -> HttpResponseRedirect:
    session = services.start_session(user_id=_user_id(request))
    return redirect("chat:session", session_id=session.id)


@require_GET
def chat_page(request: HttpRequest, session_id: str) -> HttpResponse:
    session = selectors.owned_session(user_id=_user_id(request), session_id=session_id)
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
    session = selectors.owned_session(user_id=_user_id(request), session_id=session_id)
    return render(request, "chat/_messages.html", {"messages_": working.get_messages(session_id=session.id)})


@require_POST
def rename_session(request: HttpRequest, session_id: str) -> HttpResponseRedirect:
    session = selectors.owned_session(user_id=_user_id(request), session_id=session_id)
    form = RenameForm(request.POST)
    if form.is_valid():
        services.rename_session(session=session, title=form.cleaned_data["title"])
    else:
        messages.error(request, "A title needs 1 to 200 characters.")
    return redirect("chat:home")


@require_POST
def delete_session(request: HttpRequest, session_id: str) -> HttpResponseRedirect:
    session = selectors.owned_session(user_id=_user_id(request), session_id=session_id)
    services.delete_session(session=session)
    messages.success(request, "Chat deleted.")
    return redirect("chat:home")


@require_GET
def my_memories(request: HttpRequest) -> HttpResponse:
    memories = selectors.own_memories_grouped(user_id=_user_id(request))
    return render(request, "chat/my_memories.html", {"memories": memories})


@require_POST
def forget_memory(request: HttpRequest, memory_id: str) -> HttpResponseRedirect:
    try:
        services.forget_own_memory(user_id=_user_id(request), memory_id=memory_id)
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
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(reverse("chat:home"))
    return render(request, "registration/signup.html", {"form": form})
