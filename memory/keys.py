"""Every Redis key the memory engine uses, in one place."""

from __future__ import annotations

from core.redis_client import key


def safe(part: str) -> str:
    """An id as one key segment: ':' is the separator, so `a:msgs` must not become a sub-key of `a`."""
    return part.replace("%", "%25").replace(":", "%3A")


def unsafe(segment: str) -> str:
    """The id a `safe` segment came from (every '%' in a segment starts "%25" or "%3A")."""
    return segment.replace("%3A", ":").replace("%25", "%")


def _glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def family_pattern(family: str) -> str:
    """SCAN pattern for every key of a family ("wm", "extract", "idem"): `<prefix>:<family>:*`."""
    return _glob(key(family)) + ":*"


def split_family_key(redis_key: str, family: str) -> tuple[str, str] | None:
    """`<prefix>:<family>:<safe id>[:<part>]` -> (id, part); None for another family's key."""
    head = key(family) + ":"
    if not redis_key.startswith(head):
        return None
    segment, _, part = redis_key[len(head) :].partition(":")
    return unsafe(segment), part


def memory(memory_id: str) -> str:
    """A live memory hash (indexed)."""
    return key("mem", safe(memory_id))


def memory_stats(memory_id: str) -> str:
    """Access count and last access of a memory, outside the indexed hash (no re-index per read)."""
    return key("memstats", safe(memory_id))


def trash(memory_id: str) -> str:
    """A soft-deleted memory: renamed out of the index prefix, expires after the grace period."""
    return key("trash", safe(memory_id))


def memory_id_claim(memory_id: str) -> str:
    """A caller-chosen id, claimed for good by the create that used it (no TTL): an id is given to
    one memory only, so a later memory can never inherit its history, stats or user index entry."""
    return key("idclaim", safe(memory_id))


def history(memory_id: str) -> str:
    return key("hist", safe(memory_id))


def user_memory_ids(user_id: str) -> str:
    """Every memory id a user ever had (for history, erase and identity moves)."""
    return key("user", safe(user_id), "mids")


def user_trash(user_id: str) -> str:
    """Soft-deleted memory ids of a user, scored by deletion time."""
    return key("user", safe(user_id), "trash")


def user_sessions(user_id: str) -> str:
    """Session ids of a user, scored by last activity."""
    return key("user", safe(user_id), "sessions")


def users() -> str:
    """All user ids seen, scored by last activity (inspector overview)."""
    return key("users")


def session(session_id: str) -> str:
    return key("wm", safe(session_id))


def session_messages(session_id: str) -> str:
    return key("wm", safe(session_id), "msgs")


def session_data(session_id: str) -> str:
    return key("wm", safe(session_id), "data")


def session_tools(session_id: str) -> str:
    return key("wm", safe(session_id), "tools")


def session_traces(session_id: str) -> str:
    return key("wm", safe(session_id), "traces")


def session_keys(session_id: str) -> list[str]:
    return [
        session(session_id),
        session_messages(session_id),
        session_data(session_id),
        session_tools(session_id),
        session_traces(session_id),
    ]


def mutation_stream() -> str:
    """Every memory mutation in time order (live feed, audit)."""
    return key("stream", "mutations")


# The extraction workers' consumer group on the turn stream.
TURN_GROUP = "extractors"


def turn_stream() -> str:
    """Finished chat turns waiting for background extraction."""
    return key("stream", "turns")


def idempotency(op_key: str) -> str:
    """Marks an operation (e.g. one extraction decision) as applied, so a redelivery skips it."""
    return key("idem", safe(op_key))


def dead_letter_stream() -> str:
    """Extraction jobs that failed too often, with their turns, for retry or discard."""
    return key("stream", "turns", "dead")


def extraction(session_id: str, part: str) -> str:
    """Per-session extraction state: seq, cursor, turns, lock, plan:<n>, last_at, retry_at, failures."""
    return key("extract", safe(session_id), part)


def extraction_lock(session_id: str) -> str:
    """Held by the worker extracting the session (and taken over by an erase or identity move)."""
    return extraction(session_id, "lock")


def extraction_keys(session_id: str) -> list[str]:
    return [
        extraction(session_id, part)
        for part in ("seq", "cursor", "turns", "lock", "last_at", "retry_at", "failures", "summary_id")
    ]


def extraction_stats() -> str:
    return key("extract", "stats")


def worker_lives() -> str:
    """Worker name -> the id of its current life (process): a lock left by an earlier life is free."""
    return key("workers", "lives")


def retention_last_run() -> str:
    """When the retention sweep last ran (epoch seconds), so one worker runs it per interval."""
    return key("retention", "last_run")
