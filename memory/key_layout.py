"""The one-off move of an install's keys to the cluster layout (memory/keys.py): session,
extraction and user keys gain their hash tag, the single users sorted set is split into its
shards, and the long-term memory tier (memories, trash, history, stats, id claims, idempotency
markers, the user's memory ids and trash, the mutation stream) moves under the memory slot's tag
`{m}`, its index rebuilt for the new key prefix. Run at every start (`manage.py migrate_keys`,
called by the launcher): a second run finds nothing to move (a marker key says so). Renames keep
values and TTLs; a key whose new name is already taken is left where it is and reported (never
overwritten, never deleted). It refuses while a memory worker is alive (its heartbeat is fresh):
processes of either layout read and write the keys it moves. Servers and workers started any other
way than the launcher refuse to start on data still in an older layout (old_layout_in_use)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field

import redis
from django.conf import settings

from core.redis_client import get_redis, is_cluster, key
from core.workers import worker_heartbeats
from memory import keys
from memory.index import convert_vectors, ensure_index, forget_index_cache, index_state
from memory.records import as_text

TAGGED_FAMILIES = ("wm", "extract", "user")
# Families of the memory tier, named `<prefix>:<family>:<id>` before the memory slot's tag.
MEMORY_FAMILIES = ("mem", "memstats", "trash", "idclaim", "hist", "idem")
# The user keys that belong to the memory tier (the session list stays with the user's tag).
_MEMORY_USER_PARTS = {"mids": keys.user_memory_ids, "trash": keys.user_trash}
LAYOUT = "3"  # 1: before the hash tags (no marker key); 2: session tier tagged; 3: memory tier too
BATCH = 1000
PROGRESS_EVERY = 10_000

Say = Callable[[str], None]

OLD_LAYOUT = "this Redis holds data in the previous key layout; run `python manage.py migrate_keys` first"


class WorkersRunning(RuntimeError):
    """A memory worker is alive on this Redis: moving keys under it would lose its writes."""


@dataclass
class LayoutReport:
    renamed: int = 0
    users_moved: int = 0
    left: list[str] = field(default_factory=list)  # old keys whose new name was taken
    dropped_indexes: list[str] = field(default_factory=list)  # old memory indexes (no memory deleted)


def _new_name(redis_key: str, family: str) -> str | None:
    """The new name of a key from before the tags; None when it has it already (or is global)."""
    head = key(family) + ":"
    segment, sep, part = redis_key[len(head) :].partition(":")
    if family == "user" and part in _MEMORY_USER_PARTS:
        return _MEMORY_USER_PARTS[part](keys.untagged(segment))  # plain or tagged (layout 2)
    if segment.startswith("{") or (family != "wm" and not sep):
        return None  # tagged already, or a global key of the family (`extract:stats`)
    return head + keys.tagged(keys.unsafe(segment)) + sep + part


def _renames(client: redis.Redis) -> Iterator[tuple[str, str]]:
    for family in TAGGED_FAMILIES:
        for raw in list(client.scan_iter(match=keys.family_pattern(family), count=BATCH)):
            old = as_text(raw)
            new = _new_name(old, family)
            if new is not None:
                yield old, new
    for family in MEMORY_FAMILIES:
        head = key(family) + ":"
        for raw in list(client.scan_iter(match=keys.family_pattern(family), count=BATCH)):
            old = as_text(raw)
            yield old, keys.memory_key(family, old[len(head) :])
    yield key("stream", "mutations"), keys.mutation_stream()


def _rename_all(client: redis.Redis, report: LayoutReport, say: Say) -> None:
    """RENAMENX in pipelined batches (a large install has several keys per memory)."""
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        with client.pipeline(transaction=False) as pipe:
            for old, new in batch:
                pipe.renamenx(old, new)
            done = pipe.execute(raise_on_error=False)
        for (old, _), moved in zip(batch, done, strict=True):
            if isinstance(moved, redis.ResponseError):  # "no such key": gone since the scan
                continue
            if moved:
                report.renamed += 1
                if report.renamed % PROGRESS_EVERY == 0:
                    say(f"keys: {report.renamed} renamed so far")
            elif client.exists(old):
                report.left.append(old)
        batch.clear()

    for pair in _renames(client):
        batch.append(pair)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()


def _old_indexes(client: redis.Redis) -> list[str]:
    """Memory indexes named before the memory slot's tag (`<prefix>:idx:memories[:v<N>]`)."""
    old = key("idx", "memories")
    names = [as_text(n) for n in client.execute_command("FT._LIST")]
    return [n for n in names if n == old or n.startswith(old + ":v")]


def _drop_index(client: redis.Redis, name: str) -> None:
    try:
        client.execute_command("FT.DROPINDEX", name)
    except redis.ResponseError as exc:
        # Another launcher migrating at the same time dropped it between FT._LIST and here.
        if "unknown index" not in str(exc).lower():
            raise


def _move_index(client: redis.Redis, report: LayoutReport, say: Say, poll_seconds: float) -> None:
    """Convert vectors of another dtype, drop the indexes over the old key prefix (FT.DROPINDEX
    without DD: no hash is touched; the memories moved away from it anyway), build the current one
    over the new prefix and wait until it holds every memory, so the first search after the start
    finds them all."""
    try:
        old = _old_indexes(client)
    except redis.ResponseError:  # no search module (a Redis that cannot hold the index)
        return
    # Older releases stored float32 vectors: a hash whose vector does not fit the new index's dtype
    # would be left out of it, unsearchable, without a word. Converted whether or not an old index
    # is left: a first start that died after dropping it must not skip this on the next one (the
    # pass picks vectors by length, so repeating it converts nothing twice).
    converted = convert_vectors(to_dtype=settings.VECTOR_DTYPE)
    if converted:
        say(f"memory index: converted the vectors of {converted} memories to {settings.VECTOR_DTYPE}")
    for name in old:
        _drop_index(client, name)
        report.dropped_indexes.append(name)
    with suppress(redis.ResponseError):  # no alias of that name (gone with its index, or none)
        client.execute_command("FT.ALIASDEL", key("idx", "memories"))
    if not old and not converted:
        return
    if old:
        say(f"memory index: dropped {', '.join(old)} (old key prefix); building the new one")
    forget_index_cache()
    ensure_index()
    while (state := index_state()) is not None and (state["indexing"] or state["percent_indexed"] < 100):
        say(f"memory index: {state['percent_indexed']:.0f}% built, {state['documents']} memories")
        time.sleep(poll_seconds)
    if state is not None:
        say(f"memory index: built, {state['documents']} memories")


def old_layout_in_use(client: redis.Redis | None = None) -> bool:
    """Whether this Redis holds data the current layout cannot see: the marker is not current and a
    key only the older layouts write is there (the single users set, a memory index over the old
    key prefix; `migrate` removes both every time it runs, even when it leaves a taken name in
    place). At most three cheap commands, for every server and worker start: an empty Redis, or one
    this layout wrote from the first start, is never refused."""
    if is_cluster():
        return False
    client = client or get_redis()
    if as_text(client.get(keys.layout_marker()) or b"") == LAYOUT:
        return False
    if client.exists(keys.legacy_users()):
        return True
    try:
        return bool(_old_indexes(client))
    except redis.ResponseError:  # no search module: nothing indexed under any layout
        return False


def _refuse_while_workers_run() -> None:
    alive = [worker for worker in worker_heartbeats() if worker["alive"]]
    if alive:
        names = ", ".join(f"{worker['id']} ({worker['age_s']} s ago)" for worker in alive)
        stale = 3 * settings.WORKER_HEARTBEAT_SECONDS
        raise WorkersRunning(
            f"a memory worker is running on this Redis (last heartbeat: {names}); stop every Engram "
            f"process first, since they read and write the keys being moved. If it is not running "
            f"any more, its heartbeat counts as stale {stale} s after the last one; or pass --force."
        )


def migrate(
    client: redis.Redis | None = None,
    *,
    say: Say | None = None,
    poll_seconds: float = 0.5,
    force: bool = False,
) -> LayoutReport:
    """Raises WorkersRunning (unless `force`) when there is something to move and a worker is alive."""
    report = LayoutReport()
    if is_cluster():
        return report  # a cluster starts with this layout: older installs ran on one Redis
    client = client or get_redis()
    say = say or (lambda message: None)
    if as_text(client.get(keys.layout_marker()) or b"") == LAYOUT:
        return report  # moved before: no scan of the whole keyspace at every start
    if not force:
        _refuse_while_workers_run()
    _rename_all(client, report, say)
    legacy = keys.legacy_users()
    rows = client.zrange(legacy, 0, -1, withscores=True)
    if rows:
        with client.pipeline(transaction=True) as pipe:
            for user, score in rows:
                user_id = as_text(user)
                # GT: a user already active under the new layout keeps the later time.
                pipe.zadd(keys.users(user_id), {user_id: score}, gt=True)
            pipe.delete(legacy)
            pipe.execute()
        report.users_moved = len(rows)
    _move_index(client, report, say, poll_seconds)
    if not report.left:
        client.set(keys.layout_marker(), LAYOUT)
    return report
