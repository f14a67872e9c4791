"""Memory <-> Redis hash. The vector is stored as raw bytes (float32 by default) next to the fields."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from django.conf import settings

from memory.schema import MEMORY
from memory.schema import vector_bytes as vector_bytes  # re-exported: callers encode vectors here
from memory.types import Memory

# Fields the search queries return (everything but the vector and the derived source_turns).
RETURN_FIELDS = MEMORY.return_fields


def content_hash(text: str) -> str:
    """Equal for texts that differ only in case and whitespace."""
    normalised = " ".join(text.lower().split())
    return hashlib.sha256(normalised.encode()).hexdigest()[:32]


def vector_from_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype=settings.VECTOR_DTYPE).astype(np.float32)


def to_hash(memory: Memory, *, embedding: np.ndarray | None, expires_at: float | None) -> dict[str, Any]:
    return MEMORY.encode(memory, embedding=embedding, expires_at=expires_at)


def as_text(raw: Any) -> str:
    """A Redis reply value as text ("" for a missing one)."""
    if raw is None:
        return ""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def ttl_or_none(raw: Any) -> int | None:
    """A TTL reply as seconds left, or None for "no expiry" (-1) and "no key" (-2)."""
    return int(raw) if raw is not None and int(raw) > 0 else None


def from_hash(fields: dict[Any, Any], *, ttl_seconds: int | None = None, deleted: bool = False) -> Memory:
    # Decode every field once (search results build tens of these per query).
    data = {as_text(k): as_text(v) for k, v in fields.items() if k not in (b"embedding", "embedding")}
    return MEMORY.decode(data, ttl_seconds=ttl_seconds, deleted=deleted)


def from_return_fields(values: list[bytes | None]) -> Memory:
    """A memory from an HMGET of RETURN_FIELDS, in that order (search's hot path: no key decoding)."""
    if len(values) != len(RETURN_FIELDS):
        raise ValueError(f"expected {len(RETURN_FIELDS)} values, got {len(values)}")
    return MEMORY.decode_returned(values)
