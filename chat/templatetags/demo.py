"""`{% demo_allowed as name %}`: whether the chat page offers the memory demo (chat/demo.py), so
the page needs nothing from its view for it."""

from __future__ import annotations

from typing import Any

from django import template

from chat.demo import demo_allowed as allowed

register = template.Library()


@register.simple_tag(takes_context=True)
def demo_allowed(context: dict[str, Any]) -> bool:
    request = context.get("request")
    return request is not None and allowed(request.user)
