"""Anonymous → account: when a visitor logs in, their memories and chats follow them. Signing out
closes the sockets that login opened (chat and inspector), so an open tab cannot keep acting as
the user and says it is signed out."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest

from chat.identity import ANON_SESSION_KEY, account_memory_id, anonymous_memory_id
from core.channel_layer import group_send_from_sync
from core.websockets import SIGNED_OUT_MESSAGE, sign_in_group
from memory.lifecycle import move_identity
from memory.types import Actor, ActorKind

logger = logging.getLogger(__name__)


@receiver(user_logged_in)
def move_anonymous_memories(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    anon_id = request.session.pop(ANON_SESSION_KEY, None)
    if not anon_id:
        return
    moved = move_identity(
        from_user_id=anonymous_memory_id(str(anon_id)),
        to_user_id=account_memory_id(user.pk),
        actor=Actor(ActorKind.USER, account_memory_id(user.pk)),
    )
    logger.info("moved anonymous memories to user %s: %s", user.pk, moved)


@receiver(user_logged_out)
def close_sockets_of_this_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # Sent before Django flushes the session, so its key still names the login's sockets.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if not session_key:
        return
    try:
        group_send_from_sync(sign_in_group(session_key), [dict(SIGNED_OUT_MESSAGE)])
    except Exception:  # signing out must work even when the channel layer does not
        logger.warning("could not close the sockets of a login that signed out", exc_info=True)
