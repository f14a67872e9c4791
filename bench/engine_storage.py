"""What-if storage experiments on the bench's own Redis, to size memory-saving proposals.

Copies a sample of real memory hashes to side prefixes and measures:
- the vector index per document for HNSW (M=16, M=8) vs FLAT, FLOAT32 vs FLOAT16, plus the
  server time to insert a document into each (one index per prefix, nothing else attached);
- the memory hash itself as a hashtable (Redis' default hash-max-listpack-value of 64) vs a
  listpack (limit above the vector's size), with a FLOAT32 and a FLOAT16 vector;
- a mutation-stream entry that carries a pointer instead of the full event JSON;
- the engine's own schema without its vector field, rebuilt over the real memories: the
  per-document indexing time and bytes of everything but the vector.
Everything it creates is dropped again; the engine's own index and keys are never changed.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import redis

from bench.redis_stats import command_stats, ft_info, memory_usage, reset_command_stats, settled_used_memory

SIDE_PREFIX = "bench:whatif"
VECTOR_VARIANTS: tuple[tuple[str, str, str, tuple[Any, ...]], ...] = (
    # name, algorithm, type, extra attributes
    ("hnsw_float32_m16", "HNSW", "FLOAT32", ("M", 16, "EF_CONSTRUCTION", 200)),
    ("hnsw_float32_m8", "HNSW", "FLOAT32", ("M", 8, "EF_CONSTRUCTION", 200)),
    ("hnsw_float16_m16", "HNSW", "FLOAT16", ("M", 16, "EF_CONSTRUCTION", 200)),
    ("flat_float32", "FLAT", "FLOAT32", ()),
    ("flat_float16", "FLAT", "FLOAT16", ()),
)


def _client() -> redis.Redis:
    from core.redis_client import get_redis

    return get_redis()


def sample_hashes(ids: list[str], count: int, seed: int) -> list[dict[bytes, bytes]]:
    from memory import keys

    chosen = random.Random(seed).sample(ids, k=min(count, len(ids)))
    with _client().pipeline(transaction=False) as pipe:
        for memory_id in chosen:
            pipe.hgetall(keys.memory(memory_id))
        return [row for row in pipe.execute() if row]


def _as(blob: bytes, dtype: str) -> bytes:
    """A stored vector (in the engine's VECTOR_DTYPE) converted to `dtype` bytes."""
    from django.conf import settings

    return np.frombuffer(blob, dtype=settings.VECTOR_DTYPE).astype(dtype).tobytes()


def _engine_dtype() -> str:
    from django.conf import settings

    return str(settings.VECTOR_DTYPE)


def _write(prefix: str, rows: list[dict[bytes, bytes]], batch: int = 500) -> float:
    """Pipelined HSETs; returns wall seconds (the index insert happens inside each HSET)."""
    client = _client()
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        with client.pipeline(transaction=False) as pipe:
            for i, row in enumerate(rows[start : start + batch], start=start):
                pipe.hset(f"{prefix}{i}", mapping=row)
            pipe.execute()
    return time.perf_counter() - started


def _drop(index: str, *, with_docs: bool) -> None:
    args = ["FT.DROPINDEX", index, "DD"] if with_docs else ["FT.DROPINDEX", index]
    _client().execute_command(*args)


def vector_index_variants(rows: list[dict[bytes, bytes]]) -> dict[str, Any]:
    """Per-document vector index bytes and HSET cost for each algorithm/type, same vectors."""
    client = _client()
    dims = len(np.frombuffer(rows[0][b"embedding"], dtype=_engine_dtype()))
    out: dict[str, Any] = {}
    for name, algorithm, dtype, extra in VECTOR_VARIANTS:
        prefix = f"{SIDE_PREFIX}:{name}:"
        index = f"{SIDE_PREFIX}:idx:{name}"
        attrs = ["TYPE", dtype, "DIM", dims, "DISTANCE_METRIC", "COSINE", *extra]
        client.execute_command(
            "FT.CREATE", index, "ON", "HASH", "PREFIX", 1, prefix, "SCHEMA",
            "user_id", "TAG", "CASESENSITIVE", "embedding", "VECTOR", algorithm, len(attrs), *attrs,
        )  # fmt: skip
        docs = [{b"user_id": r[b"user_id"], b"embedding": _as(r[b"embedding"], dtype.lower())} for r in rows]
        reset_command_stats(client)
        seconds = _write(prefix, docs)
        hset = command_stats(client, "hset")
        size_mb = float(ft_info(client, index).get("vector_index_sz_mb", 0.0))
        out[name] = {
            "docs": len(docs),
            "vector_index_bytes_per_doc": round(size_mb * 1024 * 1024 / len(docs), 1),
            "server_hset_us_per_doc": round(hset["usec_per_call"], 1),
            "client_docs_per_s": round(len(docs) / seconds, 1),
        }
        _drop(index, with_docs=True)
    return out


def hash_encodings(rows: list[dict[bytes, bytes]]) -> dict[str, Any]:
    """MEMORY USAGE of the same memory hashes as a hashtable (Redis' default limit of 64 bytes per
    listpack value) and as a listpack (limit above the vector's size), float32 and float16."""
    client = _client()
    configured = int(next(iter(client.config_get("hash-max-listpack-value").values())))
    listpack_limit = max(configured, 2048)
    as32 = [{**r, b"embedding": _as(r[b"embedding"], "float32")} for r in rows]
    as16 = [{**r, b"embedding": _as(r[b"embedding"], "float16")} for r in rows]
    out: dict[str, Any] = {"configured_hash_max_listpack_value": configured}
    plans = (
        ("hashtable_float32", 64, as32),
        (f"listpack_{listpack_limit}_float32", listpack_limit, as32),
        (f"listpack_{listpack_limit}_float16", listpack_limit, as16),
    )
    try:
        for name, limit, data in plans:
            client.config_set("hash-max-listpack-value", limit)
            prefix = f"{SIDE_PREFIX}:hash:{name}:"
            _write(prefix, data)
            names = [f"{prefix}{i}" for i in range(len(data))]
            sizes = memory_usage(client, names)
            encoding = client.object("encoding", names[0])
            out[name] = {
                "bytes_per_hash": round(sum(sizes) / len(sizes), 1),
                "encoding": encoding.decode() if isinstance(encoding, bytes) else str(encoding),
            }
            client.delete(*names)
    finally:
        client.config_set("hash-max-listpack-value", configured)
    return out


def field_sizes(rows: list[dict[bytes, bytes]]) -> dict[str, float]:
    """Average stored bytes per hash field (what each field costs before Redis' overhead)."""
    totals: dict[str, int] = {}
    for row in rows:
        for name, value in row.items():
            key = name.decode()
            totals[key] = totals.get(key, 0) + len(value)
    return {name: round(total / len(rows), 1) for name, total in sorted(totals.items(), key=lambda x: -x[1])}


def _wait_indexed(index: str, docs: int, timeout: float = 300.0) -> float:
    """Seconds until the background scan of a new index has indexed `docs` documents."""
    client = _client()
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        info = ft_info(client, index)
        done = int(info.get("indexing", 0)) == 0 and float(info.get("percent_indexed", 1)) >= 1.0
        if done and int(info.get("num_docs", 0)) >= docs:
            break
        time.sleep(0.2)
    return time.perf_counter() - started


def _side_index(name: str, *, drop: frozenset[str] = frozenset(), sortable: bool = True) -> str:
    """An index with the engine's schema over the engine's own hashes, under another name, without
    the fields in `drop` (and without SORTABLE numerics when sortable=False)."""
    from redisvl.index import SearchIndex

    from core.embeddings import get_embedder
    from memory.index import schema

    spec = schema(get_embedder().dims)
    spec["index"] = {**spec["index"], "name": f"{SIDE_PREFIX}:idx:{name}"}
    fields = [f for f in spec["fields"] if f["name"] not in drop and f["type"] not in drop]
    if not sortable:
        fields = [{**f, "attrs": {**f.get("attrs", {}), "sortable": False}} if f["type"] == "numeric" else f
                  for f in fields]  # fmt: skip
    spec["fields"] = fields
    SearchIndex.from_dict(spec, redis_client=_client(), validate_on_load=False).create()
    return str(spec["index"]["name"])


def _index_costs(info: dict[str, Any]) -> dict[str, Any]:
    docs = max(1, int(info.get("num_docs", 0)))
    return {
        "docs": docs,
        "indexing_us_per_doc": round(float(info.get("total_indexing_time", 0.0)) * 1000 / docs, 1),
        "vector_index_bytes_per_doc": round(float(info.get("vector_index_sz_mb", 0.0)) * 2**20 / docs, 1),
        "other_index_bytes_per_doc": round(
            float(info.get("total_index_memory_sz_mb", 0.0)) * 2**20 / docs, 1
        ),
    }


# Schema variants rebuilt over the engine's memories: name -> (fields or field types left out, sortable).
SIDE_VARIANTS: tuple[tuple[str, frozenset[str], bool], ...] = (
    ("without_vector", frozenset({"vector"}), True),
    ("without_vector_and_content_hash", frozenset({"vector", "content_hash"}), True),
    ("without_vector_content_hash_and_sortable", frozenset({"vector", "content_hash"}), False),
)


def side_indexes_over_engine_data() -> dict[str, Any]:
    """The engine's schema without its vector field (and further trimmed), rebuilt over the real
    memories, one variant at a time.

    FT.INFO's total_indexing_time splits the per-document indexing cost into the vector field and
    the rest; the used_memory delta shows what the non-vector part really costs (FT.INFO leaves out
    some allocations) and what dropping a field would save.
    """
    from memory.index import index_name

    client = _client()
    engine = ft_info(client, index_name())
    docs = int(engine.get("num_docs", 0))
    out: dict[str, Any] = {"engine": _index_costs(engine)}
    for name, drop, sortable in SIDE_VARIANTS:
        before = settled_used_memory(client)
        side = _side_index(name, drop=drop, sortable=sortable)
        try:
            seconds = _wait_indexed(side, docs)
            out[name] = {
                **_index_costs(ft_info(client, side)),
                "build_seconds": round(seconds, 1),
                "used_memory_bytes_per_doc": round((settled_used_memory(client) - before) / docs, 1),
            }
        finally:
            _drop(side, with_docs=False)
    return out


def slim_stream_entry(rows: list[dict[bytes, bytes]]) -> dict[str, Any]:
    """Bytes per mutation-stream entry if it carried a pointer instead of the full event JSON."""
    client = _client()
    name = f"{SIDE_PREFIX}:stream"
    with client.pipeline(transaction=False) as pipe:
        for count, row in enumerate(rows, start=1):
            fields = {"event": "added", "user_id": row[b"user_id"], "memory_id": row[b"id"], "version": 1}
            pipe.xadd(name, fields)
            if count % 1000 == 0:
                pipe.execute()
        pipe.execute()
    size = memory_usage(client, [name])[0]
    client.delete(name)
    return {"entries": len(rows), "bytes_per_entry": round(size / len(rows), 1)}


def run(ids: list[str], *, seed: int, sample: int) -> dict[str, Any]:
    rows = sample_hashes(ids, sample, seed)
    return {
        "sample_hashes": len(rows),
        "field_bytes_avg": field_sizes(rows),
        "vector_index_variants": vector_index_variants(rows),
        "hash_encodings": hash_encodings(rows),
        "slim_stream_entry": slim_stream_entry(rows),
        "side_indexes_over_engine_data": side_indexes_over_engine_data(),
    }
