"""Raw FT.SEARCH: the command builder, its reply parser and the pipelined runner the reads use.

Replies are RESP2 flat lists (core/redis_client.py); a query RediSearch refuses is InvalidInput.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from core.redis_client import on_memory_node, pipelined_on_memory_node
from memory.index import index_name
from memory.records import RETURN_FIELDS, from_return_fields
from memory.types import InvalidInput, Memory


@dataclass(frozen=True)
class Row:
    key: str
    score: float
    fields: dict[bytes, bytes]


def ft_search_args(
    query: str,
    *,
    limit: int,
    offset: int = 0,
    params: dict[str, bytes | str] | None = None,
    sort_by: str | None = None,
    descending: bool = False,
    with_scores: bool = False,
    scorer: str | None = None,
    return_fields: Sequence[str] = RETURN_FIELDS,
) -> list[Any]:
    args: list[Any] = ["FT.SEARCH", index_name(), query]
    if with_scores:
        args.append("WITHSCORES")
    if scorer:
        args += ["SCORER", scorer]
    args += ["RETURN", len(return_fields), *return_fields]
    if sort_by:
        args += ["SORTBY", sort_by, "DESC" if descending else "ASC"]
    args += ["LIMIT", offset, limit]
    if params:
        args.append("PARAMS")
        args.append(2 * len(params))
        for name, value in params.items():
            args += [name, value]
    args += ["DIALECT", 2]
    return args


def parse_reply(reply: list[Any], *, with_scores: bool) -> tuple[int, list[Row]]:
    total = int(reply[0])
    rows: list[Row] = []
    step = 3 if with_scores else 2
    for i in range(1, len(reply), step):
        key = reply[i].decode()
        score = float(reply[i + 1]) if with_scores else 0.0
        flat = reply[i + step - 1] or []
        fields = dict(zip(flat[::2], flat[1::2], strict=False))
        rows.append(Row(key, score, fields))
    return total, rows


@dataclass
class Rows:
    """One FT.SEARCH reply as columns: a search reads a hundred rows, only a few become memories."""

    keys: list[str]
    scores: list[float]
    fields: list[dict[bytes, bytes]]


def reply_columns(reply: list[Any], *, with_scores: bool) -> Rows:
    step = 3 if with_scores else 2
    keys = [raw.decode() for raw in reply[1::step]]
    scores = list(map(float, reply[2::step])) if with_scores else []
    fields = [dict(zip(flat[::2], flat[1::2], strict=False)) if flat else {} for flat in reply[step::step]]
    return Rows(keys, scores, fields)


def run_search(args: list[Any], *, with_scores: bool = False) -> tuple[int, list[Row]]:
    try:
        return parse_reply(on_memory_node(lambda c: c.execute_command(*args)), with_scores=with_scores)
    except redis.ResponseError as exc:
        raise InvalidInput(f"the search could not run: {exc}") from exc


def run_pipeline(commands: list[list[Any]]) -> list[Any]:
    if not commands:
        return []
    try:
        return pipelined_on_memory_node(commands)
    except redis.ResponseError as exc:
        raise InvalidInput(f"the search could not run: {exc}") from exc


# Every hash's RETURN_FIELDS in one command: a pipeline of HMGETs costs the client ~10 µs of packing
# and parsing per memory. Memory hashes share one slot ({m}), so on a cluster it runs on their node.
_HMGET_EACH = (
    "local out = {} "
    "for i, key in ipairs(KEYS) do out[i] = redis.call('HMGET', key, unpack(ARGV)) end "
    "return out"
)


def load_memories(redis_keys: list[str]) -> dict[str, Memory]:
    """Memories by key (keys that vanished since the search are left out)."""
    if not redis_keys:
        return {}
    try:
        replies = on_memory_node(
            lambda client: client.execute_command(
                "EVAL", _HMGET_EACH, len(redis_keys), *redis_keys, *RETURN_FIELDS
            )
        )
    except redis.ResponseError as exc:
        raise InvalidInput(f"the search could not run: {exc}") from exc
    return {
        key: from_return_fields(values)
        for key, values in zip(redis_keys, replies, strict=True)
        if values and values[0] is not None
    }
