"""API key authentication for ninja: the key in an `X-API-Key` header, as a Bearer token, or as
the password of HTTP Basic (the username is ignored: that is how a client that only takes a URL,
`http://engram:<key>@host/`, sends it). Each scheme sets `request.auth` to an `ApiCaller`.

A missing, unknown, malformed or revoked key all end the same way: 401, nothing else said. A known
key over its per-minute limit gets 429 with Retry-After."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from django.http import HttpRequest
from ninja.security import APIKeyHeader, HttpBasicAuth, HttpBearer

from api.callers import ApiCaller
from api.problems import RateLimited
from core.api_keys import authenticate_api_key, touch_last_used
from core.models import ApiKey
from core.redis_client import get_redis, key

RATE_WINDOW_SECONDS = 60


def check_rate_limit(api_key: ApiKey, *, now: float | None = None) -> None:
    """One Redis counter per key and minute; over the key's limit raises RateLimited."""
    now = time.time() if now is None else now
    window = int(now // RATE_WINDOW_SECONDS)
    counter = key("api", "rate", str(api_key.pk), str(window))
    client = get_redis()
    with client.pipeline(transaction=True) as pipe:
        pipe.incr(counter)
        pipe.expire(counter, RATE_WINDOW_SECONDS * 2)
        count, _ = pipe.execute()
    if int(count) > api_key.rate_limit_per_minute:
        retry_after = int((window + 1) * RATE_WINDOW_SECONDS - now) + 1
        raise RateLimited(
            f"this key may make {api_key.rate_limit_per_minute} requests a minute", retry_after=retry_after
        )


def caller_for_key(raw_key: str | None) -> ApiCaller | None:
    """The caller a raw key stands for (after its rate limit), or None. Also used by the MCP server."""
    if not raw_key:
        return None
    api_key = authenticate_api_key(raw_key=raw_key.strip())
    if api_key is None:
        return None
    check_rate_limit(api_key)
    touch_last_used(api_key=api_key)
    return ApiCaller.from_key(api_key)


class KeyHeaderAuth(APIKeyHeader):
    param_name = "X-API-Key"

    def authenticate(self, request: HttpRequest, key: str | None) -> ApiCaller | None:
        return caller_for_key(key)


def _authorization(request: HttpRequest, scheme: str) -> str | None:
    """The credentials after `scheme` in the Authorization header, or None (another scheme or none).

    ninja's own parsing logs the whole header in DEBUG when the scheme differs, which would put a
    Basic-encoded key in the log; this reads it without logging anything."""
    value = request.headers.get("Authorization", "")
    head, _, rest = value.partition(" ")
    if head.lower() != scheme or not rest.strip():
        return None
    return rest.strip()


class BearerAuth(HttpBearer):
    def __call__(self, request: HttpRequest) -> Any:
        token = _authorization(request, "bearer")
        return None if token is None else self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> ApiCaller | None:
        return caller_for_key(token)


class BasicAuth(HttpBasicAuth):
    def __call__(self, request: HttpRequest) -> Any:
        encoded = _authorization(request, "basic")
        if encoded is None:
            return None
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        username, colon, password = decoded.partition(":")
        return self.authenticate(request, username, password) if colon else None

    def authenticate(self, request: HttpRequest, username: str, password: str) -> ApiCaller | None:
        return caller_for_key(password)


API_AUTH = [KeyHeaderAuth(), BearerAuth(), BasicAuth()]
