"""Writes fenced by a lock: a job holding a Redis lock passes its `Lease` to every write, and each
write checks, inside the same WATCH/MULTI, that the lock still holds its token.

An erase or an identity move takes the locks of the sessions involved over (`take_over`); a job in
flight then fails its next write with `LeaseLost` instead of writing to an erased or abandoned id.

Two slots on a cluster: the lock sits with its session's keys (the session-tier writes check it,
`fenced`), and its mirror (`keys.lock_mirror`) in the memory slot (memory writes check that,
`hold`). Every holder sets the lock first and the mirror second; a job that takes a free lock then
reads the lock once more after setting the mirror (`memory.extraction.queue.acquire_lock`). So a
take-over that lands at any point between a job's two steps leaves the job's mirror overwritten or
makes the job give up: no memory write of the old holder passes after a take-over.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis
from redis.client import Pipeline

from core.redis_client import REDIS_UNREACHABLE, get_redis
from memory import keys
from memory.types import Lease, LeaseLost

# KEYS: locks; ARGV: token. Deletes only the locks still holding this token.
_RELEASE = """
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then n = n + redis.call('DEL', k) end
end
return n
"""


# The mirror lives this much shorter than its lock (set and extended just after it, with the same
# lifetime it would outlive it): a memory write passing the mirror check after the lock lapsed, and
# a new holder took it, would be the old holder's write.
MIRROR_MARGIN_MS = 300


def mirror_ms(lock_ms: int) -> int:
    """The lifetime of a lock's mirror for a lock of `lock_ms` (never the whole of a short lock's)."""
    return max(1, lock_ms - min(MIRROR_MARGIN_MS, lock_ms // 4))


# KEYS: lock; ARGV: token, ms. Extends the lock only while it still holds this token.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def hold(pipe: Pipeline, lease: Lease | None) -> None:
    """Inside a memory write's WATCH block (before MULTI): watch the lock's mirror (memory slot)
    and fail if it is no longer ours. Watching makes the EXEC fail if it changes meanwhile."""
    if lease is not None:
        _hold(pipe, keys.lock_mirror(lease.key), lease.token)


def _hold(pipe: Pipeline, lock_key: str, token: str) -> None:
    pipe.watch(lock_key)
    if pipe.get(lock_key) != token.encode():
        raise LeaseLost("this job's lock was taken over (erase, identity move or expiry); nothing written")


def take_over(lock_keys: Sequence[str], *, seconds: float, token: str = "") -> str:
    """Hold these locks whoever held them: their old holders' fenced writes fail from now on.
    Returns the token they now hold (`token` to add locks to ones already taken).

    The locks first (each in its session's slot), then their mirrors (one MULTI in the memory slot)."""
    token = token or uuid.uuid4().hex
    if lock_keys:
        ms = int(seconds * 1000)
        client = get_redis()
        with client.pipeline(transaction=False) as pipe:
            for lock_key in lock_keys:
                pipe.set(lock_key, token, px=ms)
            pipe.execute()
        with client.pipeline(transaction=True) as pipe:
            for lock_key in lock_keys:
                pipe.set(keys.lock_mirror(lock_key), token, px=mirror_ms(ms))
            pipe.execute()
    return token


def release(lock_keys: Sequence[str], token: str) -> int:
    """Free the locks (and their mirrors) still held with `token`; returns how many locks."""
    if not lock_keys:
        return 0
    client = get_redis()
    client.eval(_RELEASE, len(lock_keys), *[keys.lock_mirror(k) for k in lock_keys], token)
    # One call per lock: each is in its own session's slot.
    return sum(int(client.eval(_RELEASE, 1, lock_key, token)) for lock_key in lock_keys)


@contextmanager
def fenced(held: Lease | None) -> Iterator[Pipeline]:
    """A MULTI pipeline for the session tier (the lock's own slot), executed on leaving the block
    only if the lease still holds."""
    with get_redis().pipeline(transaction=True) as pipe:
        if held is not None:
            _hold(pipe, held.key, held.token)
        pipe.multi()
        yield pipe
        try:
            pipe.execute()
        except redis.WatchError as exc:  # the lock changed between the check and EXEC
            raise LeaseLost("this job's lock was taken over while it wrote; nothing written") from exc


@contextmanager
def kept_alive(held: Lease, *, seconds: float) -> Iterator[None]:
    """Extend the lock every `seconds`/3 while the block runs: a slow model call must not let it
    lapse (the job would then lose its lease with nobody to take over). A worker that dies stops
    extending, so its lock still expires and another worker takes the job."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(seconds / 3):
            try:
                client, ms = get_redis(), int(seconds * 1000)
                extended = all(
                    client.eval(_EXTEND, 1, lock_key, held.token, lifetime)
                    for lock_key, lifetime in ((held.key, ms), (keys.lock_mirror(held.key), mirror_ms(ms)))
                )
            except REDIS_UNREACHABLE:
                continue  # an outage: the job's own next write fails too; keep trying meanwhile
            if not extended:
                return  # taken over (or gone): the job's next write fails, nothing to keep

    thread = threading.Thread(target=beat, daemon=True, name="lease-keepalive")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
