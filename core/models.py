"""Core's only model: the API keys other agents use to reach Engram's memory (api/, the MCP server).

It lives in core so the inspector can manage keys and the api can check them without importing each
other. The key itself is never stored: only its sha256 and its first characters (to tell keys apart)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

# One limit each, used by the model, core.api_keys' checks and the inspector's form.
NAME_MAX_LENGTH = 100
ID_MAX_LENGTH = 200  # an agent id or a namespace: the engine's scope ids (memory.query.MAX_ID_LENGTH)


class ApiKey(models.Model):
    class Role(models.TextChoices):
        APP = "app", "app"  # one agent's memories, in the namespaces it was given
        STAFF = "staff", "staff"  # every user's memories; pins, locks and erase

    name = models.CharField(max_length=NAME_MAX_LENGTH, unique=True)
    prefix = models.CharField(max_length=8)
    key_hash = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=10, choices=Role.choices)
    agent_id = models.CharField(max_length=ID_MAX_LENGTH)
    namespaces = models.JSONField(default=list)
    rate_limit_per_minute = models.PositiveIntegerField(default=600)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "name"]
        permissions = [("manage_api_keys", "Can create and revoke API keys")]
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
