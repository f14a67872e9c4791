"""Who may use the inspector, and as whom their changes are recorded.

Two Django permissions (see memory/models.py): `memory.view_memories` to look, and
`memory.change_memories` to correct. Both also require `is_staff`: the inspector shows every user's
data, so a permission granted by mistake to a customer account must still not open it. Change
implies view, since correcting a memory you cannot see is not a thing. Superusers have everything.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import HttpResponseClientRedirect

from memory.access import Owner
from memory.types import Actor, ActorKind

VIEW_PERMISSION = "memory.view_memories"
CHANGE_PERMISSION = "memory.change_memories"
# API keys (core.models.ApiKey) open every user's memories to another program: their own permission.
KEYS_PERMISSION = "core.manage_api_keys"

View = Callable[..., HttpResponse]


def can_view(user: Any) -> bool:
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    return bool(user.has_perm(VIEW_PERMISSION) or user.has_perm(CHANGE_PERMISSION))


def can_change(user: Any) -> bool:
    return bool(
        user.is_authenticated and user.is_active and user.is_staff and user.has_perm(CHANGE_PERMISSION)
    )


def can_manage_keys(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_staff and user.has_perm(KEYS_PERMISSION))


def can_create_staff_keys(user: Any) -> bool:
    """A staff key pins, locks and erases through the API: minting one needs what doing that in the
    inspector needs (the change permission), or managing keys would be a way around it."""
    return can_manage_keys(user) and can_change(user)


def staff_actor(user: Any) -> Actor:
    """The history's record of a staff change: pk for uniqueness, username so people can read it."""
    return Actor(ActorKind.STAFF, f"staff-{user.pk}:{user.get_username()}")


def staff_owner(user: Any, *, change: bool = False) -> Owner:
    """Every user's memories, for by-id engine calls: the inspector's views are behind
    `inspector_access`; asked again here (with `change=True` on write paths) so a view that lost its
    decorator still reaches none, and a view-only member still changes none."""
    if not (can_change(user) if change else can_view(user)):
        raise PermissionDenied(CHANGE_PERMISSION if change else VIEW_PERMISSION)
    return Owner.anyone()


def is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _denied(request: HttpRequest, *, needs: str) -> HttpResponse:
    return render(
        request,
        "inspector/forbidden.html",
        {"needs": needs, "change": needs == CHANGE_PERMISSION, "keys": needs == KEYS_PERMISSION},
        status=403,
    )


def inspector_access(*, change: bool = False, keys: bool = False) -> Callable[[View], View]:
    """Anonymous: to the login page. Logged in without the permission: 403."""
    if keys:
        allowed, needs = can_manage_keys, KEYS_PERMISSION
    elif change:
        allowed, needs = can_change, CHANGE_PERMISSION
    else:
        allowed, needs = can_view, VIEW_PERMISSION

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                if is_htmx(request):
                    # An XHR would follow a 302 and swap the login form into a fragment.
                    login = redirect_to_login(request.headers.get("HX-Current-URL") or request.path)
                    return HttpResponseClientRedirect(login["Location"])
                return redirect_to_login(request.get_full_path())
            if not allowed(request.user):
                return _denied(request, needs=needs)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


view_required = inspector_access(change=False)
change_required = inspector_access(change=True)
keys_required = inspector_access(keys=True)
