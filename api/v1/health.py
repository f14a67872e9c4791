"""The one public operation: is the API up (no key needed, nothing about any data)."""

from __future__ import annotations

import time

from django.http import HttpRequest
from ninja import Router, Schema

from api.problems import ERRORS

router = Router(tags=["health"])


class Health(Schema):
    status: str
    now: float  # server time, seconds since the epoch


@router.get("", response={200: Health, **ERRORS}, auth=None, summary="Is the API up")
def health(request: HttpRequest) -> Health:
    return Health(status="ok", now=time.time())
