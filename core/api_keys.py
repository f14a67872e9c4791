"""API keys: create, revoke, authenticate. Writes and the one read the auth layer needs.

A key is "eng_" + 40 URL-safe characters. Only its sha256 is stored, so a database leak gives
nobody a working key; lookups go by that hash (an index), and the final comparison is constant-time
so the time a check takes says nothing about how close a guess was."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from core.models import ID_MAX_LENGTH, NAME_MAX_LENGTH, ApiKey

logger = logging.getLogger(__name__)

KEY_PREFIX = "eng_"
_RANDOM_CHARS = 40
KEY_LENGTH = len(KEY_PREFIX) + _RANDOM_CHARS
SHOWN_PREFIX_LENGTH = 8
MAX_NAMESPACES = 50
# A rate limit above this is a typo, not a plan (10 requests every millisecond).
MAX_RATE_LIMIT_PER_MINUTE = 600_000


class ApiKeyError(ValueError):
    """A key could not be created or changed; the message is fit to show to staff."""


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


def _new_raw_key() -> str:
    # token_urlsafe(30) is 40 characters of [A-Za-z0-9_-].
    return KEY_PREFIX + secrets.token_urlsafe(30)[:_RANDOM_CHARS]


def _clean_id(value: object, *, name: str, max_length: int = ID_MAX_LENGTH) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiKeyError(f"{name} is required")
    if value != value.strip():
        raise ApiKeyError(f"{name} may not start or end with a space")
    if len(value) > max_length:
        raise ApiKeyError(f"{name} is longer than {max_length} characters")
    # The same rules as the engine's scope ids (memory.query.validate_scope_id), which core may
    # not import: no control characters, no comma (RediSearch's tag separator), no "/" in an
    # agent id (app sessions are stored as "<agent_id>/<session id>").
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value) or "," in value:
        raise ApiKeyError(f"{name} may not contain commas or control characters")
    return value


def create_api_key(
    *,
    name: str,
    role: str,
    agent_id: str,
    namespaces: Sequence[str],
    rate_limit_per_minute: int = 600,
    created_by: Any = None,
) -> tuple[ApiKey, str]:
    """A new key and its raw value, returned once and never stored: show it, then forget it."""
    name = _clean_id(name, name="name", max_length=NAME_MAX_LENGTH)
    if role not in ApiKey.Role.values:
        raise ApiKeyError("role must be app or staff")
    agent_id = _clean_id(agent_id, name="agent id")
    if "/" in agent_id:
        raise ApiKeyError("agent id may not contain '/'")
    if isinstance(namespaces, str):
        namespaces = [namespaces]
    cleaned = list(dict.fromkeys(_clean_id(ns, name="namespace") for ns in namespaces))
    if role == ApiKey.Role.APP and not cleaned:
        raise ApiKeyError("an app key needs at least one namespace")
    if len(cleaned) > MAX_NAMESPACES:
        raise ApiKeyError(f"a key may have at most {MAX_NAMESPACES} namespaces")
    if (
        not isinstance(rate_limit_per_minute, int)
        or isinstance(rate_limit_per_minute, bool)
        or not 1 <= rate_limit_per_minute <= MAX_RATE_LIMIT_PER_MINUTE
    ):
        raise ApiKeyError(f"the rate limit must be a whole number from 1 to {MAX_RATE_LIMIT_PER_MINUTE}")
    raw_key = _new_raw_key()
    try:
        with transaction.atomic():
            api_key = ApiKey.objects.create(
                name=name,
                prefix=raw_key[:SHOWN_PREFIX_LENGTH],
                key_hash=hash_key(raw_key),
                role=role,
                agent_id=agent_id,
                namespaces=cleaned,
                rate_limit_per_minute=rate_limit_per_minute,
                created_by=created_by if getattr(created_by, "pk", None) else None,
            )
    except IntegrityError as exc:
        raise ApiKeyError(f"a key named {name!r} already exists") from exc
    return api_key, raw_key


def revoke_api_key(*, key_id: int) -> ApiKey:
    """Revoke for good (a revoked key cannot come back; create a new one). Revoking twice is fine."""
    try:
        api_key = ApiKey.objects.get(pk=key_id)
    except (ApiKey.DoesNotExist, ValueError, TypeError) as exc:
        raise ApiKeyError(f"no API key {key_id}") from exc
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def authenticate_api_key(*, raw_key: str) -> ApiKey | None:
    """The live key this raw value is, or None (unknown, malformed and revoked all look the same)."""
    if not isinstance(raw_key, str) or len(raw_key) != KEY_LENGTH or not raw_key.startswith(KEY_PREFIX):
        return None
    digest = hash_key(raw_key)
    api_key = ApiKey.objects.filter(key_hash=digest).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, digest) or api_key.revoked_at is not None:
        return None
    return api_key


def touch_last_used(*, api_key: ApiKey, every_seconds: int = 60) -> None:
    """Record when the key was last used: at most one write a minute per key, not one per request."""
    now = timezone.now()
    if api_key.last_used_at is not None and (now - api_key.last_used_at).total_seconds() < every_seconds:
        return
    try:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    except DatabaseError:
        # Best effort: a busy database (SQLite's write lock) must not fail the request it serves.
        logger.warning("could not record the last use of API key %r", api_key.name, exc_info=True)
        return
    api_key.last_used_at = now


def list_api_keys() -> list[ApiKey]:
    return list(ApiKey.objects.select_related("created_by").order_by("revoked_at", "-created_at", "name"))
