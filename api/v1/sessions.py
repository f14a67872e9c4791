"""Working memory: sessions, their messages and data."""

from __future__ import annotations

from ninja import Router

router = Router(tags=["sessions"])
