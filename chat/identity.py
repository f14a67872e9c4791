"""Who is chatting: a logged-in account or an anonymous visitor, as a memory user id.

Anonymous visitors get a random id kept in their Django session; when they log in, everything
stored under it moves to their account (see chat/signals.py). The id (and so the session row and
its cookie) is created only when a visitor starts a chat: reading pages must not create one, or
every cookie-less request (a crawler, a health probe) would add a row to the session table.
"""

from __future__ import annotations

import secrets

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase

from core.accounts import account_memory_id

ANON_SESSION_KEY = "engram_anon_id"
__all__ = ["ANON_SESSION_KEY", "account_memory_id", "anonymous_memory_id", "memory_user_id"]


def anonymous_memory_id(anon_id: str) -> str:
    return f"anon-{anon_id}"


def memory_user_id(
    user: AbstractBaseUser | AnonymousUser, session: SessionBase, *, create: bool
) -> str | None:
    """The memory user id for this request or socket; None for an anonymous visitor without one
    (unless `create`, which gives them one)."""
    if user.is_authenticated:
        return account_memory_id(user.pk)
    anon_id = session.get(ANON_SESSION_KEY)
    if not anon_id:
        if not create:
            return None
        anon_id = secrets.token_hex(12)
        session[ANON_SESSION_KEY] = anon_id
    return anonymous_memory_id(str(anon_id))
