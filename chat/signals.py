"""Anonymous → account: when a visitor logs in, their memories and chats follow them."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest

from chat.identity import ANON_SESSION_KEY, account_memory_id, anonymous_memory_id
from memory.services import move_identity
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
