"""Which memory user id a Django account has, and back: the one mapping between accounts (Django
auth) and the ids memory is stored under. In core so that both the chat (which files a signed-in
user's memories under it) and the inspector (which finds a user by username) use it without one
importing the other."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

ACCOUNT_PREFIX = "user-"


def account_memory_id(user_pk: Any) -> str:
    return f"{ACCOUNT_PREFIX}{user_pk}"


def account_for_memory_id(memory_user_id: str) -> Any | None:
    """The account whose memories are stored under this id (None for anonymous visitors, API
    callers' own ids, or an account that was removed)."""
    if not memory_user_id.startswith(ACCOUNT_PREFIX):
        return None
    pk = memory_user_id.removeprefix(ACCOUNT_PREFIX)
    if not pk.isdigit():
        return None
    return get_user_model().objects.filter(pk=int(pk)).first()


def account_by_login(name: str) -> Any | None:
    """The account a support agent names: its exact username, else the one account with this
    username or email in any case (several matches are ambiguous: None)."""
    users = get_user_model().objects
    name = name.strip()
    if not name:
        return None
    exact = users.filter(username=name).first()
    if exact is not None:
        return exact
    for field in ("username__iexact", "email__iexact"):
        matches = list(users.filter(**{field: name})[:2])
        if len(matches) == 1:
            return matches[0]
    return None
