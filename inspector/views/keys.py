"""API keys for other agents: list, create (the key is shown once, in the answer to the create, and
never again) and revoke. Staff with the `core.manage_api_keys` permission only; a staff-role key
also needs the inspector's change permission (`can_create_staff_keys`)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from core.api_keys import ApiKeyError, create_api_key, list_api_keys, revoke_api_key
from core.models import ApiKey
from inspector.forms import ApiKeyForm
from inspector.permissions import can_create_staff_keys, keys_required, staff_actor

logger = logging.getLogger(__name__)


def _form(request: HttpRequest, data: Any = None) -> ApiKeyForm:
    return ApiKeyForm(data, allow_staff=can_create_staff_keys(request.user))


def _page(request: HttpRequest, form: ApiKeyForm, *, raw_key: str = "", status: int = 200) -> HttpResponse:
    context = {"form": form, "keys": list_api_keys(), "raw_key": raw_key}
    return render(request, "inspector/api_keys.html", context, status=status)


@keys_required
@require_GET
@never_cache
def api_keys(request: HttpRequest) -> HttpResponse:
    return _page(request, _form(request))


@keys_required
@require_POST
@never_cache
def create_key(request: HttpRequest) -> HttpResponse:
    form = _form(request, request.POST)
    if not form.is_valid():
        # A staff role without the change permission ends here too: it is not one of the choices.
        return _page(request, form, status=400)
    data = form.cleaned_data
    if data["role"] == ApiKey.Role.STAFF and not can_create_staff_keys(request.user):
        # The form offers no staff role then; asked again so a form change can never open it.
        raise PermissionDenied("a staff key needs the permission to change memories")
    try:
        api_key, raw_key = create_api_key(
            name=data["name"],
            role=data["role"],
            agent_id=data["agent_id"],
            namespaces=data["namespaces"],
            rate_limit_per_minute=data["rate_limit_per_minute"],
            created_by=request.user,
        )
    except ApiKeyError as exc:
        form.add_error(None, str(exc))
        return _page(request, form, status=400)
    logger.info(
        "inspector: %s created API key %r (%s)", staff_actor(request.user).id, api_key.name, api_key.role
    )
    # No redirect: the key exists only in this answer (never_cache keeps it out of caches and history).
    return _page(request, _form(request), raw_key=raw_key)


@keys_required
@require_POST
def revoke_key(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        api_key = revoke_api_key(key_id=key_id)
    except ApiKeyError:
        messages.error(request, "That API key does not exist.")
        return redirect(reverse("inspector:api_keys"))
    logger.info("inspector: %s revoked API key %r", staff_actor(request.user).id, api_key.name)
    messages.success(request, f"Revoked the key “{api_key.name}”: it no longer opens anything.")
    return redirect(reverse("inspector:api_keys"))
