"""The one-off move of an install's keys to the cluster layout (memory/keys.py): session,
extraction and user keys gain their hash tag, and the single users sorted set is split into its
shards. Run at every start (`manage.py migrate_keys`, called by the launcher): a second run finds
nothing to move (a marker key says so). Renames keep values and TTLs; a key whose new name is
already taken is left where it is and reported (never overwritten, never deleted)."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from core.redis_client import get_redis, is_cluster, key
from memory import keys
from memory.records import as_text

TAGGED_FAMILIES = ("wm", "extract", "user")
LAYOUT = "2"  # 1: before the hash tags (no marker key)


@dataclass
class LayoutReport:
    renamed: int = 0
    users_moved: int = 0
    left: list[str] = field(default_factory=list)  # old keys whose new name was taken


def _new_name(redis_key: str, family: str) -> str | None:
    """The tagged name of a key from before the tags; None when it has its tag (or is global)."""
    head = key(family) + ":"
    segment, sep, part = redis_key[len(head) :].partition(":")
    if segment.startswith("{") or (family != "wm" and not sep):
        return None  # tagged already, or a global key of the family (`extract:stats`)
    return head + keys.tagged(keys.unsafe(segment)) + sep + part


def migrate(client: redis.Redis | None = None) -> LayoutReport:
    report = LayoutReport()
    if is_cluster():
        return report  # a cluster starts with this layout: older installs ran on one Redis
    client = client or get_redis()
    if as_text(client.get(keys.layout_marker()) or b"") == LAYOUT:
        return report  # moved before: no scan of the whole keyspace at every start
    for family in TAGGED_FAMILIES:
        for raw in list(client.scan_iter(match=keys.family_pattern(family), count=1000)):
            old = as_text(raw)
            new = _new_name(old, family)
            if new is None:
                continue
            if client.renamenx(old, new):
                report.renamed += 1
            elif client.exists(old):
                report.left.append(old)
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
    if not report.left:
        client.set(keys.layout_marker(), LAYOUT)
    return report
