"""Memory <-> Redis hash. The vector is stored as raw bytes (float16 by default; the dtype of the index
serving, memory.index.vector_dtype) next to the fields."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from core.embeddings import get_embedder
from memory import schema
from memory.index import vector_dtype
from memory.schema import MEMORY
from memory.types import Memory

# Fields the search queries return (everything but the vector and the derived source_turns).
RETURN_FIELDS = MEMORY.return_fields


def content_hash(text: str) -> str:
    """Equal for texts that differ only in case and whitespace."""
    normalised = " ".join(text.lower().split())
    return hashlib.sha256(normalised.encode()).hexdigest()[:32]


def vector_bytes(vector: np.ndarray) -> bytes:
    """A vector as the index serving expects it (stored in a hash or sent with a KNN query)."""
    return schema.vector_bytes(vector, dtype=vector_dtype())


def vector_from_bytes(raw: bytes) -> np.ndarray:
    """A stored vector as float32. Its dtype is told by its length (the embedder's dims are fixed), so
    a hash written before `memory_index rebuild` converted it still reads right."""
    dtype = np.float16 if len(raw) == 2 * get_embedder().dims else np.float32
    return np.frombuffer(raw, dtype=dtype).astype(np.float32)


def to_hash(memory: Memory, *, embedding: np.ndarray | None, expires_at: float | None) -> dict[str, Any]:
    encoded = None if embedding is None else vector_bytes(embedding)
    return MEMORY.encode(memory, embedding=encoded, expires_at=expires_at)


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
