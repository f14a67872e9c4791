"""The overview: totals, users, the extraction queue and its dead letters; the user lookup box."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from core.accounts import account_by_login, account_memory_id
from core.workers import worker_heartbeats
from inspector import selectors as inspector_selectors
from inspector.forms import UserLookupForm
from inspector.permissions import can_change, view_required
from inspector.presenters import as_datetime, duration_text
from inspector.views.common import feed_context, is_partial, page_number
from memory.extraction import dead_letters, queue
from memory.selectors import known_users
from memory.types import MemoryType

USERS_PAGE_SIZE = 25
DEAD_LETTERS_SHOWN = 50


def _users_context(request: HttpRequest) -> dict[str, Any]:
    page = page_number(request.GET.get("page"))
    # One more than a page, to know whether there is a next page without counting everything.
    users = known_users(offset=(page - 1) * USERS_PAGE_SIZE, limit=USERS_PAGE_SIZE + 1)
    return {
        "user_rows": inspector_selectors.user_rows(users=users[:USERS_PAGE_SIZE]),
        "users_page": page,
        "users_has_next": len(users) > USERS_PAGE_SIZE,
        "types": [t.value for t in MemoryType],
    }


def queue_context(request: HttpRequest) -> dict[str, Any]:
    health = queue.queue_health()
    letters = dead_letters.dead_letters(limit=DEAD_LETTERS_SHOWN)
    return {
        "queue": health,
        "oldest_pending": duration_text(health["oldest_pending_age_s"]) if health["pending"] else "",
        "dead_letters": [
            {"letter": letter, "failed_at": as_datetime(letter.failed_at), "turn_count": len(letter.turns)}
            for letter in letters
        ],
        "workers": worker_heartbeats(),
        "can_change": can_change(request.user),
    }


@view_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    if is_partial(request):
        # The live feed makes the page fetch its totals and queue again (memories-changed).
        part = request.GET.get("part", "")
        if part == "totals":
            return render(request, "inspector/_totals.html", {"totals": inspector_selectors.totals()})
        if part == "queue":
            return render(request, "inspector/_queue.html", queue_context(request))
        return render(request, "inspector/_users_table.html", _users_context(request))
    return render_overview(request, lookup_form=UserLookupForm())


def render_overview(request: HttpRequest, *, lookup_form: UserLookupForm, status: int = 200) -> HttpResponse:
    context = {
        "totals": inspector_selectors.totals(),
        "lookup_form": lookup_form,
        **_users_context(request),
        **queue_context(request),
        **feed_context(),
    }
    return render(request, "inspector/overview.html", context, status=status)


@view_required
@require_GET
def user_lookup(request: HttpRequest) -> HttpResponse:
    """The overview's exact-id search box: straight to the user's page when the id is known."""
    form = UserLookupForm(request.GET)
    if not form.is_valid():
        return render_overview(request, lookup_form=form, status=400)
    typed = form.cleaned_data["user_id"]
    # An id Engram holds wins; otherwise the name of a signed-up account (username or email).
    if inspector_selectors.user_known(user_id=typed):
        return redirect("inspector:user", user_id=typed)
    account = account_by_login(typed)
    if account is not None:
        return redirect("inspector:user", user_id=account_memory_id(account.pk))
    form.add_error(
        "user_id", "Engram has nothing stored under this exact id, and no account has this username or email."
    )
    return render_overview(request, lookup_form=form, status=404)
