"""Memory <-> Redis hash. The vector is stored as raw bytes (float32 by default) next to the fields."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
from django.conf import settings

from memory.types import Actor, Memory, MemoryType, Scope

# Fields the search queries return (everything but the vector).
RETURN_FIELDS = [
    "id",
    "text",
    "type",
    "topics",
    "entities",
    "user_id",
    "agent_id",
    "session_id",
    "namespace",
    "event_date",
    "created_at",
    "updated_at",
    "content_hash",
    "version",
    "pinned",
    "locked",
    "source",
    "created_by",
    "expires_at",
]


def content_hash(text: str) -> str:
    """Equal for texts that differ only in case and whitespace."""
    normalised = " ".join(text.lower().split())
    return hashlib.sha256(normalised.encode()).hexdigest()[:32]


def vector_bytes(vector: np.ndarray) -> bytes:
    """The stored (and query) form of a vector: settings.VECTOR_DTYPE bytes, as the index expects."""
    return np.asarray(vector, dtype=settings.VECTOR_DTYPE).tobytes()


def vector_from_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype=settings.VECTOR_DTYPE).astype(np.float32)


def to_hash(memory: Memory, *, embedding: np.ndarray | None, expires_at: float | None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": memory.id,
        "text": memory.text,
        "type": str(memory.type),
        "topics": ",".join(memory.topics),
        "entities": ",".join(memory.entities),
        "user_id": memory.scope.user_id,
        "agent_id": memory.scope.agent_id,
        "namespace": memory.scope.namespace,
        "session_id": memory.scope.session_id,
        "created_at": memory.created_at,
        "updated_at": memory.updated_at,
        "content_hash": memory.content_hash,
        "version": memory.version,
        "pinned": "1" if memory.pinned else "0",
        "locked": "1" if memory.locked else "0",
        "source": json.dumps(memory.source),
        # The same ids as a TAG field: "which memories came from this turn" is one indexed query.
        "source_turns": ",".join(s.replace(",", " ") for s in memory.source),
        "created_by": json.dumps(memory.created_by.as_dict()),
    }
    if memory.event_date is not None:
        fields["event_date"] = memory.event_date
    if expires_at is not None:
        fields["expires_at"] = expires_at
    if embedding is not None:
        fields["embedding"] = vector_bytes(embedding)
    return fields


def as_text(raw: Any) -> str:
    """A Redis reply value as text ("" for a missing one)."""
    if raw is None:
        return ""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def ttl_or_none(raw: Any) -> int | None:
    """A TTL reply as seconds left, or None for "no expiry" (-1) and "no key" (-2)."""
    return int(raw) if raw is not None and int(raw) > 0 else None


def _split(value: str) -> list[str]:
    return [part for part in value.split(",") if part] if value else []


def _float(value: str, default: float = 0.0) -> float:
    return float(value) if value else default


def from_hash(fields: dict[Any, Any], *, ttl_seconds: int | None = None, deleted: bool = False) -> Memory:
    # Decode every field once (search results build tens of these per query).
    data = {as_text(k): as_text(v) for k, v in fields.items() if k not in (b"embedding", "embedding")}
    return _from_text(data, ttl_seconds=ttl_seconds, deleted=deleted)


def from_return_fields(values: list[bytes | None]) -> Memory:
    """A memory from an HMGET of RETURN_FIELDS, in that order (search's hot path: no key decoding)."""
    return _from_text(
        {name: value.decode() for name, value in zip(RETURN_FIELDS, values, strict=True) if value is not None}
    )


def _from_text(data: dict[str, str], *, ttl_seconds: int | None = None, deleted: bool = False) -> Memory:
    get = data.get
    event_date = get("event_date", "")
    return Memory(
        id=data["id"],
        text=get("text", ""),
        type=MemoryType(get("type") or "semantic"),
        scope=Scope(
            user_id=get("user_id", ""),
            agent_id=get("agent_id", ""),
            namespace=get("namespace", ""),
            session_id=get("session_id", ""),
        ),
        topics=_split(get("topics", "")),
        entities=_split(get("entities", "")),
        event_date=float(event_date) if event_date else None,
        created_at=_float(get("created_at", "")),
        updated_at=_float(get("updated_at", "")),
        last_accessed_at=_float(get("last_accessed_at", "")),
        access_count=int(_float(get("access_count", ""))),
        content_hash=get("content_hash", ""),
        version=int(_float(get("version", ""), 1)),
        pinned=get("pinned") == "1",
        locked=get("locked") == "1",
        source=json.loads(get("source") or "[]"),
        created_by=Actor.from_dict(json.loads(get("created_by") or "{}")),
        ttl_seconds=ttl_seconds,
        deleted=deleted,
    )
