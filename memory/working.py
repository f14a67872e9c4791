"""Working memory: a session's messages, running summary, free-form data, tool-result cache and
retrieval traces. All of a session's keys share its TTL, refreshed on every write."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from redis.client import Pipeline
from ulid import ULID

from core.redis_client import get_redis
from core.text import clean_json, clean_text
from core.text import loads as stored_json
from memory import keys, tokens
from memory.query import validate_id, validate_scope_id
from memory.records import as_text, ttl_or_none
from memory.types import BelongsToAnotherUser, InvalidInput, MemoryNotFound

ROLES = ("user", "assistant", "system", "tool")
_LATEST_TIME = 32_503_680_000.0  # 3000-01-01: a later "time" is a unit mix-up (milliseconds)
MAX_DATA_KEYS = 200
MOVE_ATTEMPTS = 20  # per session of an identity move, against writes landing meanwhile


@dataclass(frozen=True)
class WorkingMessage:
    id: str
    role: str
    content: str
    at: float
    tokens: int
    exact_tokens: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "content": self.content,
            "at": self.at,
            "tokens": self.tokens,
            "exact_tokens": self.exact_tokens,
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, raw: bytes | str) -> WorkingMessage:
        data = stored_json(raw)
        return cls(
            id=data["id"],
            role=data["role"],
            content=data["content"],
            at=float(data["at"]),
            tokens=int(data["tokens"]),
            exact_tokens=bool(data.get("exact_tokens", True)),
            meta=data.get("meta") or {},
        )


@dataclass(frozen=True)
class Session:
    id: str
    user_id: str
    agent_id: str
    title: str
    summary: str
    created_at: float
    updated_at: float
    durable: bool
    ttl_seconds: int | None
    message_count: int
    message_tokens: int
    summary_tokens: int
    exact_tokens: bool
    strategy: str = ""

    @property
    def total_tokens(self) -> int:
        return self.message_tokens + self.summary_tokens


def _is_durable(client: redis.Redis, session_id: str) -> bool:
    return as_text(client.hget(keys.session(session_id), "durable")) == "1"


def _session_ttl(durable: bool) -> int | None:
    return None if durable else settings.WORKING_MEMORY_TTL_SECONDS


def _refresh_ttl(pipe: Pipeline, session_id: str, durable: bool) -> None:
    ttl = _session_ttl(durable)
    for key in keys.session_keys(session_id):
        if ttl is None:
            pipe.persist(key)
        else:
            pipe.expire(key, ttl)


def _list_session(client: redis.Redis, *, user_id: str, session_id: str, at: float) -> None:
    """File the session under its user (the user's session list and the users index).

    Written BEFORE the session's own transaction and outside it: those keys sit in other cluster
    slots than the session's. A failure in between leaves at most a listed session that does not
    exist (yet) or is not the user's, which `session_ids_for_user` drops: nothing is lost."""
    with client.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.user_sessions(user_id), {session_id: at})
        pipe.zadd(keys.users(user_id), {user_id: at})
        pipe.execute()


def ensure_session(
    *,
    session_id: str,
    user_id: str,
    agent_id: str = "engram",
    title: str = "",
    durable: bool = False,
    strategy: str = "",
) -> Session:
    """Create the session if needed (idempotent); refreshes its TTL."""
    # Scope ids: the session's memories are filed under them (reads of a session by id stay lenient:
    # a malformed id is just a session that does not exist).
    session_id = validate_scope_id(session_id, name="session_id")
    user_id = validate_scope_id(user_id, name="user_id")
    validate_scope_id(agent_id, name="agent_id")
    client = get_redis()
    now = time.time()
    existing = client.hget(keys.session(session_id), "user_id")
    if existing is not None and as_text(existing) != user_id:
        raise BelongsToAnotherUser("this session belongs to another user")
    _list_session(client, user_id=user_id, session_id=session_id, at=now)
    with client.pipeline(transaction=True) as pipe:
        pipe.hsetnx(keys.session(session_id), "created_at", now)
        pipe.hset(
            keys.session(session_id), mapping={"id": session_id, "user_id": user_id, "agent_id": agent_id}
        )
        pipe.hsetnx(keys.session(session_id), "durable", "1" if durable else "0")
        pipe.hsetnx(keys.session(session_id), "updated_at", now)
        if title:
            pipe.hset(keys.session(session_id), "title", clean_text(title)[:200])
        if strategy:
            pipe.hset(keys.session(session_id), "strategy", strategy)
        pipe.execute()
    return _touch(session_id)


def _touch(session_id: str) -> Session:
    client = get_redis()
    durable = _is_durable(client, session_id)
    with client.pipeline(transaction=True) as pipe:
        _refresh_ttl(pipe, session_id, durable)
        pipe.execute()
    session = get_session(session_id=session_id)
    assert session is not None
    return session


def _owner(client: redis.Redis, session_id: str) -> str:
    owner = client.hget(keys.session(session_id), "user_id")
    if owner is None:
        raise MemoryNotFound(f"no session {session_id} (it may have expired)")
    return as_text(owner)


def new_message(
    *,
    role: str,
    content: str,
    message_id: str | None = None,
    at: float | None = None,
    meta: dict[str, Any] | None = None,
) -> WorkingMessage:
    """A checked message, its tokens counted; not stored yet."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise InvalidInput("content must be a string")
    content = clean_text(content)  # always storable and renderable (no lone surrogates, no NUL)
    if len(content) > settings.MESSAGE_MAX_CHARS:
        raise InvalidInput(f"message is {len(content)} characters; the limit is {settings.MESSAGE_MAX_CHARS}")
    if message_id is not None:
        message_id = validate_id(message_id, name="message id")
    if at is not None and not (isinstance(at, int | float) and math.isfinite(at) and 0 <= at < _LATEST_TIME):
        raise InvalidInput("a message's time must be seconds since 1970, before the year 3000")
    count = tokens.count_tokens(content)
    return WorkingMessage(
        id=message_id or str(ULID()),
        role=role,
        content=content,
        at=at or time.time(),
        tokens=count.tokens + tokens.MESSAGE_OVERHEAD_TOKENS,
        exact_tokens=count.exact,
        meta=meta or {},
    )


def append_message(
    *,
    session_id: str,
    role: str,
    content: str,
    message_id: str | None = None,
    at: float | None = None,
    meta: dict[str, Any] | None = None,
) -> WorkingMessage:
    message = new_message(role=role, content=content, message_id=message_id, at=at, meta=meta)
    append_messages(session_id=session_id, messages=[message])
    return message


def append_messages(*, session_id: str, messages: Sequence[WorkingMessage]) -> None:
    """Append checked messages (`new_message`) to an existing session, all or none."""
    session_id = validate_id(session_id, name="session_id")
    if not messages:
        return
    client = get_redis()
    user_id = _owner(client, session_id)
    durable = _is_durable(client, session_id)
    latest = max(m.at for m in messages)
    _list_session(client, user_id=user_id, session_id=session_id, at=latest)
    with client.pipeline(transaction=True) as pipe:
        pipe.rpush(keys.session_messages(session_id), *[json.dumps(m.as_dict()) for m in messages])
        pipe.hset(keys.session(session_id), "updated_at", latest)
        _refresh_ttl(pipe, session_id, durable)
        pipe.execute()


def get_messages(*, session_id: str, last: int | None = None) -> list[WorkingMessage]:
    start = -last if last else 0
    raw = get_redis().lrange(keys.session_messages(validate_id(session_id, name="session_id")), start, -1)
    return [WorkingMessage.from_json(item) for item in raw]


def set_summary(*, session_id: str, summary: str) -> None:
    client = get_redis()
    _owner(client, session_id)
    summary = clean_text(summary)
    count = tokens.count_tokens(summary)
    client.hset(keys.session(session_id), mapping={"summary": summary, "summary_tokens": count.tokens})


def drop_oldest_messages(*, session_id: str, count: int) -> int:
    """Remove the `count` oldest messages (after they were folded into the summary)."""
    if count <= 0:
        return 0
    client = get_redis()
    key = keys.session_messages(session_id)
    before = int(client.llen(key))
    client.ltrim(key, count, -1)
    return min(count, before)


def get_session(*, session_id: str) -> Session | None:
    return get_session_with_messages(session_id=session_id)[0]


def get_session_with_messages(*, session_id: str) -> tuple[Session | None, list[WorkingMessage]]:
    """The session and its messages, oldest first, in one round trip; (None, []) if it does not exist."""
    client = get_redis()
    session_id = validate_id(session_id, name="session_id")
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.session(session_id))
        pipe.ttl(keys.session(session_id))
        pipe.lrange(keys.session_messages(session_id), 0, -1)
        raw, ttl, messages_raw = pipe.execute()
    if not raw:
        return None, []
    data = {as_text(k): as_text(v) for k, v in raw.items()}
    messages = [WorkingMessage.from_json(m) for m in messages_raw]
    summary = data.get("summary", "")
    session = Session(
        id=session_id,
        user_id=data.get("user_id", ""),
        agent_id=data.get("agent_id", ""),
        title=data.get("title", ""),
        summary=summary,
        created_at=float(data.get("created_at") or 0),
        updated_at=float(data.get("updated_at") or 0),
        durable=data.get("durable") == "1",
        ttl_seconds=ttl_or_none(ttl),
        message_count=len(messages),
        message_tokens=sum(m.tokens for m in messages),
        summary_tokens=int(data.get("summary_tokens") or 0),
        exact_tokens=all(m.exact_tokens for m in messages) and tokens.exact_counts_available(),
        strategy=data.get("strategy", ""),
    )
    return session, messages


def set_durable(*, session_id: str, durable: bool) -> Session:
    client = get_redis()
    _owner(client, session_id)
    client.hset(keys.session(session_id), "durable", "1" if durable else "0")
    return _touch(session_id)


def rename_session(*, session_id: str, title: str) -> None:
    client = get_redis()
    _owner(client, session_id)
    client.hset(keys.session(session_id), "title", clean_text(title).strip()[:200])


def delete_session(*, session_id: str) -> None:
    client = get_redis()
    owner = client.hget(keys.session(session_id), "user_id")
    client.delete(*keys.session_keys(session_id))
    # After the delete (another slot): should this fail, readers drop the listed ghost anyway.
    if owner is not None:
        client.zrem(keys.user_sessions(as_text(owner)), session_id)


# --- Session data and the tool-result cache -----------------------------------------------------


def set_session_data(*, session_id: str, values: dict[str, Any]) -> None:
    client = get_redis()
    _owner(client, session_id)
    if values:
        client.hset(keys.session_data(session_id), mapping={k: json.dumps(v) for k, v in values.items()})
        durable = _is_durable(client, session_id)
        with client.pipeline(transaction=True) as pipe:
            _refresh_ttl(pipe, session_id, durable)
            pipe.execute()


def replace_session(
    *,
    session_id: str,
    user_id: str,
    agent_id: str = "engram",
    messages: Sequence[WorkingMessage],
    data: dict[str, Any],
    title: str = "",
    summary: str = "",
    durable: bool = False,
) -> Session:
    """Create or replace a whole session in one transaction: its messages, data, summary, title and
    durability. Traces and cached tool results stay. A session of another user is refused."""
    session_id = validate_scope_id(session_id, name="session_id")
    user_id = validate_scope_id(user_id, name="user_id")
    validate_scope_id(agent_id, name="agent_id")
    encoded_data = _encoded_data(data)
    summary = clean_text(summary)
    summary_tokens = tokens.count_tokens(summary).tokens if summary else 0
    client = get_redis()
    with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(keys.session(session_id))
                existing = pipe.hget(keys.session(session_id), "user_id")
                if existing is not None and as_text(existing) != user_id:
                    raise BelongsToAnotherUser("this session belongs to another user")
                now = time.time()
                _list_session(client, user_id=user_id, session_id=session_id, at=now)
                pipe.multi()
                pipe.delete(keys.session_messages(session_id), keys.session_data(session_id))
                pipe.hsetnx(keys.session(session_id), "created_at", now)
                pipe.hset(
                    keys.session(session_id),
                    mapping={
                        "id": session_id,
                        "user_id": user_id,
                        "agent_id": agent_id,
                        "durable": "1" if durable else "0",
                        "updated_at": now,
                        "title": clean_text(title).strip()[:200],
                        "summary": summary,
                        "summary_tokens": summary_tokens,
                    },
                )
                if messages:
                    pipe.rpush(
                        keys.session_messages(session_id), *[json.dumps(m.as_dict()) for m in messages]
                    )
                if encoded_data:
                    pipe.hset(keys.session_data(session_id), mapping=encoded_data)
                _refresh_ttl(pipe, session_id, durable)
                pipe.execute()
                break
            except redis.WatchError:
                continue
    session = get_session(session_id=session_id)
    assert session is not None
    return session


def _encoded_data(values: dict[str, Any]) -> dict[str, str]:
    if not isinstance(values, dict):
        raise InvalidInput("session data must be an object")
    if len(values) > MAX_DATA_KEYS:
        raise InvalidInput(f"session data may have at most {MAX_DATA_KEYS} keys")
    encoded = {}
    for name, value in values.items():
        if not isinstance(name, str) or not name or len(name) > 200:
            raise InvalidInput("each session data key must be a string of 1 to 200 characters")
        try:
            encoded[clean_text(name)] = json.dumps(clean_json(value), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"session data {name!r} is not JSON") from exc
    return encoded


def replace_session_data(*, session_id: str, values: dict[str, Any]) -> None:
    """Replace the session's whole data (not a merge, unlike set_session_data)."""
    encoded = _encoded_data(values)
    client = get_redis()
    _owner(client, session_id)
    durable = _is_durable(client, session_id)
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.session_data(session_id))
        if encoded:
            pipe.hset(keys.session_data(session_id), mapping=encoded)
        _refresh_ttl(pipe, session_id, durable)
        pipe.execute()


def get_session_data(*, session_id: str) -> dict[str, Any]:
    raw = get_redis().hgetall(keys.session_data(session_id))
    return {as_text(k): stored_json(v) for k, v in raw.items()}


def tool_cache_key(tool: str, arguments: dict[str, Any]) -> str:
    canonical = json.dumps({"tool": tool, "args": arguments}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def cache_tool_result(
    *, session_id: str, tool: str, arguments: dict[str, Any], result: Any, ttl_seconds: int | None = None
) -> None:
    """Remember a tool's result for this session so the agent does not call it again."""
    client = get_redis()
    _owner(client, session_id)
    ttl = ttl_seconds or settings.TOOL_CACHE_TTL_SECONDS
    field_name = tool_cache_key(tool, arguments)
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(keys.session_tools(session_id), field_name, json.dumps({"tool": tool, "result": result}))
        pipe.hexpire(keys.session_tools(session_id), ttl, field_name)
        pipe.execute()


_MISSING = object()


def get_cached_tool_result(*, session_id: str, tool: str, arguments: dict[str, Any]) -> Any:
    """The cached result, or `CACHE_MISS`."""
    raw = get_redis().hget(keys.session_tools(session_id), tool_cache_key(tool, arguments))
    if raw is None:
        return CACHE_MISS
    return stored_json(raw)["result"]


CACHE_MISS: Any = _MISSING


# --- Retrieval traces ---------------------------------------------------------------------------


def save_trace(*, session_id: str, turn_id: str, trace: dict[str, Any]) -> None:
    client = get_redis()
    _owner(client, session_id)
    durable = _is_durable(client, session_id)
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(keys.session_traces(session_id), turn_id, json.dumps(trace))
        _refresh_ttl(pipe, session_id, durable)
        pipe.execute()


def get_trace(*, session_id: str, turn_id: str) -> dict[str, Any] | None:
    raw = get_redis().hget(keys.session_traces(session_id), turn_id)
    return stored_json(raw) if raw else None


def list_traces(*, session_id: str) -> list[dict[str, Any]]:
    raw = get_redis().hgetall(keys.session_traces(session_id))
    traces = [stored_json(v) for v in raw.values()]
    return sorted(traces, key=lambda t: str(t.get("turn_id", "")) if isinstance(t, dict) else "")


# --- Per-user views -----------------------------------------------------------------------------


def session_ids_for_user(*, user_id: str, include_expired: bool = False) -> list[str]:
    """Newest first; expired sessions are pruned from the user's list unless asked for (and so are
    entries whose session is not, or no longer, the user's: `_list_session` writes before)."""
    client = get_redis()
    ids = [as_text(s) for s in client.zrevrange(keys.user_sessions(user_id), 0, -1)]
    if include_expired or not ids:
        return ids
    with client.pipeline(transaction=False) as pipe:
        for session_id in ids:
            pipe.hget(keys.session(session_id), "user_id")
        alive = [owner is not None and as_text(owner) == user_id for owner in pipe.execute()]
    expired = [s for s, ok in zip(ids, alive, strict=True) if not ok]
    if expired:
        client.zrem(keys.user_sessions(user_id), *expired)
    return [s for s, ok in zip(ids, alive, strict=True) if ok]


def list_sessions(*, user_id: str) -> list[Session]:
    sessions = [get_session(session_id=s) for s in session_ids_for_user(user_id=user_id)]
    return [s for s in sessions if s is not None]


def session_count(*, user_id: str) -> int:
    return len(session_ids_for_user(user_id=user_id))


def move_sessions(*, from_user_id: str, to_user_id: str) -> int:
    """Give every live session of `from_user_id` to `to_user_id`; returns how many moved.

    Each session in its own slot, in an order a kill at any step survives (a second call
    finishes the move): listed under the new user, then its hash changed (WATCHed: a session
    deleted meanwhile is not brought back), then unlisted from the old user once it is no longer
    theirs. Readers drop listed sessions that are not the user's, so a session listed under both
    is shown once, to its owner."""
    client = get_redis()
    moved = 0
    listed = client.zrange(keys.user_sessions(from_user_id), 0, -1, withscores=True)
    for raw, score in listed:
        session_id = raw.decode()
        client.zadd(keys.user_sessions(to_user_id), {session_id: score})
        owner, gave = _give_session(
            client, session_id=session_id, from_user_id=from_user_id, to_user_id=to_user_id
        )
        moved += gave
        if owner != to_user_id:
            client.zrem(keys.user_sessions(to_user_id), session_id)  # not the new user's after all
        if owner != from_user_id:
            client.zrem(keys.user_sessions(from_user_id), session_id)
    return moved


def _give_session(
    client: redis.Redis, *, session_id: str, from_user_id: str, to_user_id: str
) -> tuple[str | None, bool]:
    """The session's owner after giving it to `to_user_id` if it is `from_user_id`'s, and whether
    this call gave it. A write meanwhile (a message appended during a login mid-turn changes the
    hash) fails the WATCH: read again, so the session is never unlisted while still the old
    user's. Still theirs after every attempt: it stays listed under them (the move runs again)."""
    key = keys.session(session_id)
    for _ in range(MOVE_ATTEMPTS):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                owner = _owner_in(pipe, session_id)
                if owner != from_user_id:
                    return owner, False  # deleted, or someone else's
                pipe.multi()
                pipe.hset(key, "user_id", to_user_id)
                pipe.execute()
                return to_user_id, True
            except redis.WatchError:
                continue
    return from_user_id, False


def _owner_in(pipe: Pipeline, session_id: str) -> str | None:
    """The session's owner read inside a WATCH block; None when it does not exist."""
    owner = pipe.hget(keys.session(session_id), "user_id")
    return as_text(owner) if owner is not None else None
