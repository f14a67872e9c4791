"""The long-term memory index: a RediSearch index over memory hashes, defined through RedisVL.

Its definition (memory.schema) has a version: the index is `<prefix>:idx:memories:v<N>` and every
search reaches it through the alias `<prefix>:idx:memories` (index_name()). `manage.py memory_index
rebuild` builds the next version beside the serving one, waits until it holds every memory, then
moves the alias and drops the old index (documents stay), so searches never see a half-built index.
A Redis from before versions holds one index named like the alias itself (version 0); it keeps
serving until that rebuild.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
from django.conf import settings
from redisvl.index import SearchIndex

from core.embeddings import get_embedder
from core.redis_client import get_memory_redis, on_memory_node
from memory import keys
from memory.schema import INDEX_VERSION, MEMORY

logger = logging.getLogger(__name__)

# Version of an index made before versions existed: named index_name() itself, no alias.
UNVERSIONED = 0
# How often a process checks that the index still exists: a dropped index (FT.DROPINDEX) is
# recreated by the first request after at most this long, for one FT.INFO per interval.
RECHECK_SECONDS = 5.0

# Indexes before version 2 held float32 vectors; the dtype a versioned name without suffix means.
DEFAULT_DTYPE = "float16"
LEGACY_DTYPE = "float32"
DTYPES = ("float16", "float32")

_checked: dict[tuple[str, str], float] = {}
# The vector dtype of the index serving (per Redis): what writes store and queries send.
_serving_dtype: dict[tuple[str, str], str] = {}
_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


def index_name() -> str:
    """The name searches use: an alias of the serving version (or an unversioned index)."""
    return keys.memory_key("idx", "memories")


def versioned_name(version: int | None = None, *, dtype: str | None = None) -> str:
    """The index of a schema version (default: the one this code defines) holding vectors of `dtype`
    (default settings.VECTOR_DTYPE). float16 names carry no suffix; other dtypes do (`v2-float32`),
    so changing VECTOR_DTYPE makes `rebuild` build (and convert to) a new index."""
    dtype = settings.VECTOR_DTYPE if dtype is None else dtype
    suffix = "" if dtype == DEFAULT_DTYPE else f"-{dtype}"
    return keys.memory_key("idx", "memories", f"v{INDEX_VERSION if version is None else version}{suffix}")


def memory_prefix() -> str:
    """Key prefix of live memory hashes; the index covers exactly these."""
    return keys.memory_prefix()


def schema(dims: int, *, version: int | None = None) -> dict[str, Any]:
    """The RedisVL definition of the index, derived from the record's field table."""
    return {
        "index": {"name": versioned_name(version), "prefix": memory_prefix(), "storage_type": "hash"},
        "fields": MEMORY.index_fields(
            vector_attrs={
                "dims": dims,
                "distance_metric": "cosine",
                "algorithm": settings.VECTOR_INDEX_ALGORITHM,
                "datatype": settings.VECTOR_DTYPE,
            }
        ),
    }


def search_index(*, version: int | None = None) -> SearchIndex:
    return SearchIndex.from_dict(
        schema(get_embedder().dims, version=version), redis_client=get_memory_redis(), validate_on_load=False
    )


@dataclass(frozen=True)
class Serving:
    name: str  # the index index_name() answers with
    version: int  # UNVERSIONED for an index from before versions
    dtype: str  # its vector data type ("float16", "float32")
    # Its FT.INFO reply (the alias resolves to it), so callers need not ask again.
    info: dict[bytes, Any] = field(default_factory=dict, compare=False, repr=False)


def _info(name: str) -> dict[bytes, Any] | None:
    try:
        reply = on_memory_node(lambda client: client.execute_command("FT.INFO", name))
    except redis.ResponseError as exc:
        if "unknown index" in str(exc).lower() or "no such index" in str(exc).lower():
            return None
        raise
    return dict(zip(reply[::2], reply[1::2], strict=False))


def _version_of(name: str) -> int:
    prefix = versioned_name(0, dtype=DEFAULT_DTYPE)[: -len("0")]
    suffix = name.removeprefix(prefix).split("-")[0]
    return int(suffix) if name.startswith(prefix) and suffix.isdigit() else UNVERSIONED


def _dtype_of(info: dict[bytes, Any]) -> str:
    """The vector field's data type in an FT.INFO reply (lower case, "float32" when absent)."""
    for attribute in info.get(b"attributes") or []:
        pairs = dict(zip(attribute[::2], attribute[1::2], strict=False))
        if pairs.get(b"type") == b"VECTOR":
            raw = pairs.get(b"data_type")
            if raw is not None:
                return (raw.decode() if isinstance(raw, bytes) else str(raw)).lower()
    return LEGACY_DTYPE


def serving_index() -> Serving | None:
    """The index searches use now, or None when there is none."""
    info = _info(index_name())
    if info is None:
        return None
    name = info[b"index_name"].decode()
    return Serving(name=name, version=_version_of(name), dtype=_dtype_of(info), info=info)


def _create(version: int | None = None) -> None:
    index = search_index(version=version)
    try:
        index.create(overwrite=False)
    except redis.ResponseError as exc:  # another process won the race
        if "already exists" not in str(exc).lower():
            raise


def ensure_index() -> None:
    """Make sure index_name() answers: on a Redis without an index, create the current version and
    point the alias at it. An older version keeps serving (logged once; see rebuild).

    Whether an index exists is read with FT.INFO on the alias name (it resolves aliases), never with
    redisvl's exists(): that reads FT._LIST, real names only, so behind an alias it says "missing"
    and creating one would put a real index under the alias' name. Only versioned names are created
    here."""
    marker = (settings.REDIS_URL, index_name())
    if time.monotonic() - _checked.get(marker, -math.inf) < RECHECK_SECONDS:
        return
    with _lock:
        if time.monotonic() - _checked.get(marker, -math.inf) < RECHECK_SECONDS:
            return
        serving = serving_index()
        if serving is None:
            _create()
            try:
                # ALIASUPDATE, not ADD: another process may have pointed it already.
                get_memory_redis().execute_command("FT.ALIASUPDATE", index_name(), versioned_name())
            except redis.ResponseError as exc:
                # A real index named like the alias appeared since the check (an older release).
                if "does not belong" not in str(exc).lower():
                    raise
                serving = serving_index()
        if serving is not None:
            _check_serving(serving, marker=marker)
        _serving_dtype[marker] = settings.VECTOR_DTYPE if serving is None else serving.dtype
        _checked[marker] = time.monotonic()


def vector_dtype() -> str:
    """The dtype vectors are stored and queried in: the serving index's (an install still on an
    older index keeps using its dtype until `rebuild` converts it), settings.VECTOR_DTYPE for a new
    one. Cached with ensure_index's check (at most RECHECK_SECONDS old)."""
    ensure_index()
    return _serving_dtype.get((settings.REDIS_URL, index_name()), settings.VECTOR_DTYPE)


def _check_serving(serving: Serving, *, marker: tuple[str, str]) -> None:
    if serving.version == UNVERSIONED:
        _add_missing_tag_fields(serving)
    if (serving.version >= INDEX_VERSION and serving.dtype == settings.VECTOR_DTYPE) or marker in _warned:
        return
    _warned.add(marker)
    if serving.version == UNVERSIONED and _info(versioned_name()) is not None:
        # Searches keep working (the unversioned index covers the same hashes); ALIASUPDATE cannot
        # fix it, since Redis refuses an alias named like a real index.
        logger.warning(
            "A real index named %s exists beside version %s (%s) and hides the alias of that name, "
            "so searches use the older index. Unless `memory_index rebuild` is running right now, a "
            "process of a release before index versions created it: stop those processes, then run "
            "`FT.DROPINDEX %s` (without DD: no memory is deleted) and `python manage.py memory_index "
            "rebuild`.",
            serving.name,
            INDEX_VERSION,
            versioned_name(),
            serving.name,
        )
        return
    logger.warning(
        "The memory index %s is version %s with %s vectors and this code defines version %s with %s "
        "(VECTOR_DTYPE). Searches keep using it; run `python manage.py memory_index rebuild` to "
        "convert the vectors and build the new version.",
        serving.name,
        serving.version,
        serving.dtype,
        INDEX_VERSION,
        settings.VECTOR_DTYPE,
    )


# An unversioned index (made before versions) may predate these TAG fields: they are added with
# FT.ALTER so it keeps answering every query until it is rebuilt (RediSearch then rescans the
# existing hashes in the background). Versioned indexes are never altered: a change is a new version.
_ADDED_TAG_FIELDS = {"source_turns": ["SEPARATOR", ",", "CASESENSITIVE"]}


def _add_missing_tag_fields(serving: Serving) -> None:
    client = get_memory_redis()
    name = serving.name
    attributes = serving.info.get(b"attributes") or []
    present = {bytes(a[a.index(b"attribute") + 1]).decode() for a in attributes if b"attribute" in a}
    for tag, options in _ADDED_TAG_FIELDS.items():
        if tag not in present:
            try:
                client.execute_command("FT.ALTER", name, "SCHEMA", "ADD", tag, "TAG", *options)
            except redis.ResponseError as exc:  # another process added it first
                if "duplicate" not in str(exc).lower():
                    raise


def forget_index_cache() -> None:
    _checked.clear()
    _warned.clear()
    _serving_dtype.clear()


def _progress(info: dict[bytes, Any]) -> tuple[float, bool]:
    """(fraction indexed, still indexing) of an FT.INFO reply."""
    return float(info.get(b"percent_indexed", 1)), bool(int(info.get(b"indexing", 0)))


def memories_phrase(count: int) -> str:
    return f"{count} memory" if count == 1 else f"{count} memories"


def rebuild(
    *, say: Callable[[str], None], poll_seconds: float = 0.5, settle_seconds: float = RECHECK_SECONDS + 1
) -> bool:
    """Build the current version beside the serving index, wait until it holds every memory, then
    point index_name() at it and drop the old index without its documents. Searches use the old
    index until the switch. False when the current version already serves (nothing done)."""
    serving = serving_index()
    target = versioned_name()
    if serving is not None and serving.name == target:
        # Hashes it could not index (a float32 vector from an older release under this float16
        # index: a first start that died mid-migration): converting them re-indexes each one.
        converted = convert_vectors(to_dtype=serving.dtype) if _failures(serving.info) else 0
        if converted:
            say(
                f"Version {INDEX_VERSION} of the memory index serves, but it had left out memories "
                f"whose vectors were of another type: converted {memories_phrase(converted)} to "
                f"{serving.dtype}, so searches find them now."
            )
            return True
        say(f"The memory index is at version {INDEX_VERSION} already; nothing to do.")
        return False
    old_dtype = LEGACY_DTYPE if serving is None else serving.dtype
    converting = old_dtype != settings.VECTOR_DTYPE
    if converting:
        # Before the new index exists, so it scans each hash once (an update after the scan would
        # leave a deleted entry skewing BM25's statistics until RediSearch's GC runs). Each converted
        # hash leaves the old index: until the switch, searches see only the memories not converted
        # yet (seconds per 100K memories).
        converted = convert_vectors(to_dtype=settings.VECTOR_DTYPE)
        say(f"Converted the vectors of {memories_phrase(converted)} to {settings.VECTOR_DTYPE}.")
    if _info(target) is None:
        _create()
        say(f"Building version {INDEX_VERSION} of the memory index ({target}).")
    else:
        say(f"Version {INDEX_VERSION} of the memory index ({target}) exists; waiting for it to finish.")
    shown = -1
    while True:
        info = _info(target)
        if info is None:
            raise RuntimeError(f"the new index {target} disappeared while it was being built")
        fraction, indexing = _progress(info)
        if int(fraction * 100) != shown:
            shown = int(fraction * 100)
            say(f"Indexing: {shown}% done, {memories_phrase(int(info.get(b'num_docs', 0)))} indexed so far.")
        if fraction >= 1 and not indexing:
            break
        time.sleep(poll_seconds)
    _switch(serving, target)
    forget_index_cache()
    if converting:
        # Other processes write the old dtype until their cached check expires: convert what they
        # wrote meanwhile (those hashes were not indexed in the new index; the HSET re-indexes them).
        time.sleep(settle_seconds)
        late = convert_vectors(to_dtype=settings.VECTOR_DTYPE)
        if late:
            say(f"Converted {memories_phrase(late)} written during the rebuild.")
    if serving is None:
        say(f"Searches now use version {INDEX_VERSION}.")
    else:
        say(
            f"Searches now use version {INDEX_VERSION}. The old index {serving.name} was dropped; "
            "no memory was deleted."
        )
    return True


CONVERT_BATCH = 500


def convert_vectors(*, to_dtype: str) -> int:
    """Rewrite every stored vector (live and trashed memories) that is not in `to_dtype`; returns how
    many were rewritten. A vector's dtype is told by its length (the embedder's dims are fixed), so
    the pass can be repeated and a vector is never converted twice. float32 -> float16 rounds to the
    nearest half (about 3 significant digits); the other way is exact."""
    client = get_memory_redis()
    dims = get_embedder().dims
    target = np.dtype(to_dtype)
    sources = {np.dtype(d).itemsize * dims: np.dtype(d) for d in DTYPES if np.dtype(d) != target}
    converted = 0
    for pattern in (keys.memory_key("mem") + ":*", keys.memory_key("trash") + ":*"):
        batch: list[bytes] = []
        for name in client.scan_iter(match=pattern, count=1000, _type="hash"):
            batch.append(name)
            if len(batch) >= CONVERT_BATCH:
                converted += _convert_batch(client, batch, sources=sources, target=target)
                batch = []
        if batch:
            converted += _convert_batch(client, batch, sources=sources, target=target)
    return converted


def _convert_batch(
    client: redis.Redis, names: list[bytes], *, sources: dict[int, np.dtype], target: np.dtype
) -> int:
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hget(name, "embedding")
        blobs = pipe.execute()
    with client.pipeline(transaction=False) as pipe:
        for name, blob in zip(names, blobs, strict=True):
            source = sources.get(len(blob)) if blob else None
            if source is not None:
                vector = np.frombuffer(blob, dtype=source).astype(target)
                # Only if the hash still holds that blob (a concurrent edit wins).
                pipe.eval(_SWAP_VECTOR, 1, name, blob, vector.tobytes())
        return sum(1 for reply in pipe.execute() if reply)


# Compare-and-set of one hash field, so the conversion never overwrites a vector changed meanwhile.
_SWAP_VECTOR = """
if redis.call('HGET', KEYS[1], 'embedding') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'embedding', ARGV[2])
  return 1
end
return 0
"""


def _switch(serving: Serving | None, target: str) -> None:
    """Point the alias at `target` and drop the old index (no DD: the hashes stay), in one MULTI so
    no search finds no index in between."""
    with get_memory_redis().pipeline(transaction=True) as pipe:
        if serving is not None and serving.version == UNVERSIONED:
            # The old index holds the alias' name itself: drop it first.
            pipe.execute_command("FT.DROPINDEX", serving.name)
            pipe.execute_command("FT.ALIASUPDATE", index_name(), target)
        else:
            pipe.execute_command("FT.ALIASUPDATE", index_name(), target)
            if serving is not None:
                pipe.execute_command("FT.DROPINDEX", serving.name)
        for reply in pipe.execute(raise_on_error=False):
            # Another rebuild dropped the old index first: the switch is done all the same.
            if isinstance(reply, redis.ResponseError) and "unknown index" not in str(reply).lower():
                raise reply


def _failures(info: dict[bytes, Any]) -> int:
    """How many hashes the index could not index since it was built (RediSearch never lowers it)."""
    return int(info.get(b"hash_indexing_failures", 0))


def _vectors_left_out(serving: Serving) -> bool:
    """Whether the serving index leaves memories out because their vector is of another dtype. The
    failure count never goes down, so it alone would say so for good after the conversion: the hash
    FT.INFO names as its last failure tells, by its vector's length (one HGET, for the status page)."""
    if not _failures(serving.info):
        return False
    errors = serving.info.get(b"Index Errors") or []
    last = dict(zip(errors[::2], errors[1::2], strict=False)).get(b"last indexing error key")
    if not last:
        return False
    try:
        blob = on_memory_node(lambda client: client.hget(last, "embedding"))
    except redis.ResponseError:  # a key of another type under the prefix: not a memory
        return False
    return bool(blob) and len(blob) != np.dtype(serving.dtype).itemsize * get_embedder().dims


def index_state() -> dict[str, Any] | None:
    """Name, version, document count and indexing progress, or None when there is no index: before
    the first memory is written, or on a Redis that cannot hold one (no search module: FT.INFO is an
    unknown command there). The staff status page shows this exactly when Redis is degraded, so it
    must not raise on a reply it did not expect."""
    try:
        serving = serving_index()
    except redis.ResponseError as exc:
        logger.warning("The memory index could not be read: %s", exc)
        return None
    if serving is None:
        return None
    info = serving.info
    fraction, indexing = _progress(info)
    left_out = _vectors_left_out(serving)
    return {
        "name": index_name(),
        "serving": serving.name,
        "version": serving.version,
        "current_version": INDEX_VERSION,
        "rebuild_needed": serving.version < INDEX_VERSION
        or serving.dtype != settings.VECTOR_DTYPE
        or left_out,
        # Memories of another vector dtype the serving index left out (`rebuild` converts them).
        "vectors_to_convert": left_out,
        "dtype": serving.dtype,
        "documents": int(info.get(b"num_docs", 0)),
        "indexing": indexing,
        "percent_indexed": fraction * 100,
        "dims": get_embedder().dims,
    }
