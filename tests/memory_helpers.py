"""Small builders shared by the memory tests."""

from typing import Any

from memory.access import Owner
from memory.types import Actor, ActorKind, Scope

USER = Actor(ActorKind.USER, "tester")
STAFF = Actor(ActorKind.STAFF, "support-1")
EXTRACTOR = Actor(ActorKind.EXTRACTOR, "worker-1", model="gpt-test", prompt_version="v1")
# By-id engine calls in tests that are not about whose memory it is: any owner, as staff.
ANYONE = Owner.anyone()


def scope(user_id: str = "alice", **kwargs: str) -> Scope:
    return Scope(user_id=user_id, **kwargs)


def everything_in_redis(client: Any) -> dict[str, str]:
    """Every key of the db (and every stream entry, as `key#id`) with all it holds as text, for
    "this appears nowhere" assertions. Binary values (vectors) are decoded leniently."""

    def text(value: Any) -> str:
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        if isinstance(value, list | tuple):
            return " ".join(text(v) for v in value)
        if isinstance(value, dict):
            return " ".join(f"{text(k)}={text(v)}" for k, v in value.items())
        return str(value)

    dump: dict[str, str] = {}
    for raw_key in client.scan_iter(count=1000):
        redis_key = raw_key.decode()
        kind = client.type(raw_key).decode()
        if kind == "string":
            value: Any = client.get(raw_key)
        elif kind == "hash":
            value = client.hgetall(raw_key)
        elif kind == "list":
            value = client.lrange(raw_key, 0, -1)
        elif kind == "set":
            value = sorted(client.smembers(raw_key))
        elif kind == "zset":
            value = client.zrange(raw_key, 0, -1, withscores=True)
        elif kind == "stream":
            # One place per entry, so a test can allow exactly one (the erase's own audit event).
            for entry_id, fields in client.xrange(raw_key):
                dump[f"{redis_key}#{text(entry_id)}"] = text(fields)
            dump[redis_key] = "<stream>"
            continue
        else:
            value = f"<{kind}>"
        dump[redis_key] = text(value)
    return dump
