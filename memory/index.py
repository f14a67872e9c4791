"""The long-term memory index: one RediSearch index over memory hashes, defined through RedisVL."""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.conf import settings
from redisvl.index import SearchIndex

from core.embeddings import get_embedder
from core.redis_client import get_redis, key
from memory.schema import MEMORY

_ensured: set[tuple[str, str]] = set()
_lock = threading.Lock()


def index_name() -> str:
    return key("idx", "memories")


def memory_prefix() -> str:
    """Key prefix of live memory hashes; the index covers exactly these."""
    return key("mem") + ":"


def schema(dims: int) -> dict[str, Any]:
    """The RedisVL definition of the index, derived from the record's field table."""
    return {
        "index": {"name": index_name(), "prefix": memory_prefix(), "storage_type": "hash"},
        "fields": MEMORY.index_fields(
            vector_attrs={
                "dims": dims,
                "distance_metric": "cosine",
                "algorithm": settings.VECTOR_INDEX_ALGORITHM,
                "datatype": settings.VECTOR_DTYPE,
            }
        ),
    }


def search_index() -> SearchIndex:
    return SearchIndex.from_dict(
        schema(get_embedder().dims), redis_client=get_redis(), validate_on_load=False
    )


def ensure_index() -> None:
    """Create the index if it is missing (idempotent, cheap after the first call per process)."""
    marker = (settings.REDIS_URL, index_name())
    if marker in _ensured:
        return
    with _lock:
        if marker in _ensured:
            return
        index = search_index()
        if not index.exists():
            try:
                index.create(overwrite=False)
            except redis.ResponseError as exc:  # another process won the race
                if "already exists" not in str(exc).lower():
                    raise
        else:
            _add_missing_tag_fields()
        _ensured.add(marker)


# TAG fields added after the first release; an older index gets them with FT.ALTER (RediSearch then
# rescans the existing hashes in the background; those written before lack the field anyway).
_ADDED_TAG_FIELDS = {"source_turns": ["SEPARATOR", ",", "CASESENSITIVE"]}


def _add_missing_tag_fields() -> None:
    client = get_redis()
    info = client.execute_command("FT.INFO", index_name())
    attributes = dict(zip(info[::2], info[1::2], strict=False)).get(b"attributes") or []
    present = {bytes(a[a.index(b"attribute") + 1]).decode() for a in attributes if b"attribute" in a}
    for name, options in _ADDED_TAG_FIELDS.items():
        if name not in present:
            try:
                client.execute_command("FT.ALTER", index_name(), "SCHEMA", "ADD", name, "TAG", *options)
            except redis.ResponseError as exc:  # another process added it first
                if "duplicate" not in str(exc).lower():
                    raise


def forget_index_cache() -> None:
    _ensured.clear()


def index_state() -> dict[str, Any] | None:
    """Name, document count and indexing progress, or None before the first memory is written."""
    client = get_redis()
    try:
        info = client.ft(index_name()).info()
    except redis.ResponseError:
        return None
    return {
        "name": index_name(),
        "documents": int(info.get("num_docs", 0)),
        "indexing": bool(int(info.get("indexing", 0))),
        "percent_indexed": float(info.get("percent_indexed", 1)) * 100,
        "dims": get_embedder().dims,
    }
