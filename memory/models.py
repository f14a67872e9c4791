"""Django models of the memory app. Memory itself lives in Redis; the only model here is a table-less
anchor for the inspector's permissions, so they can be granted per user or group in the admin."""

from __future__ import annotations

from django.db import models


class InspectorAccess(models.Model):
    """No rows, no table (`managed = False`): it exists so Django creates the two permissions below.

    `memory.view_memories` lets staff look at everything in the inspector; `memory.change_memories`
    lets them correct it. Superusers have both.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_memories", "Can view memories in the inspector"),
            ("change_memories", "Can correct memories in the inspector"),
        ]

    def __str__(self) -> str:
        return "inspector access"
