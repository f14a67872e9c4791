"""The memory record, defined once: each field's hash name, codec, whether searches return it and
how the index holds it. The hash codec (memory.records), RETURN_FIELDS, the RediSearch schema
(memory.index) and the fields an edit rewrites (memory.mutation.editable) are all derived from FIELDS.

Adding a field to the record: one `Field(...)` line in FIELDS (and the attribute on
memory.types.Memory it fills); when it carries an `index=` spec, bump INDEX_VERSION too
(tests/test_schema.py checks that) and run `python manage.py memory_index rebuild`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from django.conf import settings

from memory.types import Actor, Memory, MemoryType, Scope

# Bump whenever the index definition derived from FIELDS changes: a new index is then built next to
# the old one by `manage.py memory_index rebuild` (see memory/index.py). 2: float16 vectors,
# event_date no longer sortable. 3: content_hash not indexed. 4: session_id, created_at and
# updated_at no longer sortable.
INDEX_VERSION = 4

IndexKind = Literal["text", "tag", "numeric", "vector"]


@dataclass(frozen=True)
class Index:
    """How RediSearch holds a field (RedisVL field type and attrs; a vector's dims and algorithm
    come from settings and the embedder when the schema is built)."""

    kind: IndexKind
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Codec:
    """encode: attribute value -> hash value (None = leave the field out); decode: stored text
    ("" when missing) -> attribute value."""

    encode: Callable[[Any], Any]
    decode: Callable[[str], Any]


@dataclass(frozen=True)
class Field:
    name: str  # the hash field (and index attribute) name
    codec: Codec
    # The record attribute it fills ("scope.user_id" for a Scope attribute); None for a value given
    # to the encoder by keyword (expires_at, embedding) and never decoded.
    attr: str | None
    returned: bool = True  # in RETURN_FIELDS (searches and HMGET read it)
    index: Index | None = None
    stored: bool = True  # False: kept elsewhere (access stats) but decoded when merged in
    decoded: bool = True  # False: derived on write only (source_turns repeats `source`)
    # Rewritten by an edit (update, restore a version): the rest (scope, flags, TTL, provenance)
    # is changed only by its own call, so an edit never resets what it did not ask to change.
    editable: bool = False
    # Another field that gives this attribute when this one is not stored, decoded with
    # `fallback_decode` (`source` is left out when `source_turns` says the same).
    fallback: str | None = None
    fallback_decode: Callable[[str], Any] | None = None


def _text(value: str) -> str:
    return value


def _float_or(default: float) -> Callable[[str], float]:
    return lambda raw: float(raw) if raw else default


def _int_or(default: int) -> Callable[[str], int]:
    return lambda raw: int(float(raw)) if raw else default


def _optional_float(raw: str) -> float | None:
    return float(raw) if raw else None


def _comma_list(raw: str) -> list[str]:
    return [part for part in raw.split(",") if part] if raw else []


def _flag(raw: str) -> bool:
    return raw == "1"


def _required(raw: str) -> str:
    if not raw:
        raise KeyError("id")
    return raw


def vector_bytes(vector: np.ndarray, *, dtype: str | None = None) -> bytes:
    """The stored (and query) form of a vector: `dtype` bytes (default settings.VECTOR_DTYPE).
    Callers use memory.records.vector_bytes, which gives the dtype of the index serving."""
    return np.asarray(vector, dtype=settings.VECTOR_DTYPE if dtype is None else dtype).tobytes()


def _vector_or_bytes(value: Any) -> bytes:
    """memory.records.to_hash encodes the vector for the serving index; raw arrays still encode."""
    return value if isinstance(value, bytes) else vector_bytes(value)


def _not_decoded(raw: str) -> None:
    return None


def _same(value: Any) -> Any:
    return value


TEXT = Codec(encode=_same, decode=_text)
ID = Codec(encode=_same, decode=_required)
MEMORY_TYPE = Codec(encode=str, decode=lambda raw: MemoryType(raw or "semantic"))
COMMA_LIST = Codec(encode=",".join, decode=_comma_list)
TIME = Codec(encode=_same, decode=_float_or(0.0))
OPTIONAL_TIME = Codec(encode=_same, decode=_optional_float)
# Fields that hold their default are left out of the hash (the decoder gives the default for a
# missing field): ~45 B a memory, which keeps the usual memory hash's listpack in a smaller
# allocator size class. Hashes written before still hold them and read the same. Only for fields
# an edit never rewrites (an edit HSETs what encode gives; a left-out field would keep its old value).
FLAG = Codec(encode=lambda value: "1" if value else None, decode=_flag)
OMITTED_IF_EMPTY = Codec(encode=lambda value: value or None, decode=_text)


_ACTOR_PARTS = ("kind", "id", "model", "prompt_version")
_ACTOR_SEPARATOR = "|"


def _actor_encode(actor: Actor) -> str:
    """kind|id|model|prompt_version without trailing empty parts (in every memory hash: a quarter
    of the dict form's bytes); a JSON array when a part holds the separator."""
    parts = [str(actor.kind), actor.id, actor.model, actor.prompt_version]
    while parts and not parts[-1]:
        parts.pop()
    if any(_ACTOR_SEPARATOR in part for part in parts):
        return json.dumps(parts, separators=(",", ":"))
    return _ACTOR_SEPARATOR.join(parts)


def _actor_decode(raw: str) -> Actor:
    # A kind never starts with "[" or "{": those are the JSON forms (older hashes hold the dict form).
    if raw[:1] in ("[", "{"):
        data = json.loads(raw)
        if isinstance(data, list):
            data = dict(zip(_ACTOR_PARTS, data, strict=False))
    else:
        data = dict(zip(_ACTOR_PARTS, raw.split(_ACTOR_SEPARATOR), strict=False)) if raw else {}
    return Actor.from_dict(data)


ACTOR = Codec(encode=_actor_encode, decode=_actor_decode)


# The turn ids again, as a TAG (a comma inside an id would split it).
def _source_encode(ids: list[str]) -> str | None:
    """The JSON list, only when `source_turns` cannot say the same (an id that is empty or holds a
    comma): ~40 B a memory."""
    return json.dumps(ids) if any(not i or "," in i for i in ids) else None


SOURCE = Codec(encode=_source_encode, decode=lambda raw: json.loads(raw or "[]"))
TURN_IDS = Codec(encode=lambda ids: ",".join(s.replace(",", " ") for s in ids) or None, decode=_not_decoded)
VECTOR = Codec(encode=_vector_or_bytes, decode=_not_decoded)
# Version 1 is left out: every change sets the version it makes (always above 1).
VERSION = Codec(encode=lambda value: None if value == 1 else value, decode=_int_or(1))
COUNT = Codec(encode=_same, decode=_int_or(0))

_CASED_TAG = Index("tag", {"case_sensitive": True})
_LIST_TAG = Index("tag", {"separator": ","})

FIELDS: tuple[Field, ...] = (
    Field("id", ID, "id"),
    Field("text", TEXT, "text", index=Index("text"), editable=True),
    Field("type", MEMORY_TYPE, "type", index=Index("tag"), editable=True),
    Field("topics", COMMA_LIST, "topics", index=_LIST_TAG, editable=True),
    Field("entities", COMMA_LIST, "entities", index=_LIST_TAG, editable=True),
    Field("user_id", TEXT, "scope.user_id", index=_CASED_TAG),
    Field("agent_id", TEXT, "scope.agent_id", index=_CASED_TAG),
    Field("namespace", TEXT, "scope.namespace", index=_CASED_TAG),
    # Not sortable (index v4): a sortable copy of these three costs every memory ~72 B in the index;
    # search reads them for each candidate from the hash instead (RediSearch loads them).
    Field("session_id", OMITTED_IF_EMPTY, "scope.session_id", index=Index("tag", {"case_sensitive": True})),
    Field("created_at", TIME, "created_at", index=Index("numeric")),
    Field("updated_at", TIME, "updated_at", index=Index("numeric"), editable=True),
    # Not indexed: exact duplicates are found among the text's nearest neighbours (selectors).
    Field("content_hash", TEXT, "content_hash", editable=True),
    Field("version", VERSION, "version", editable=True),
    Field("pinned", FLAG, "pinned", index=Index("tag")),
    Field("locked", FLAG, "locked", index=Index("tag")),
    Field("source", SOURCE, "source", fallback="source_turns", fallback_decode=_comma_list),
    # "Which memories came from this turn" is one indexed query; also `source` itself, mostly.
    Field(
        "source_turns",
        TURN_IDS,
        "source",
        decoded=False,
        index=Index("tag", {"separator": ",", "case_sensitive": True}),
    ),
    Field("created_by", ACTOR, "created_by"),
    # Not sortable: only the inspector's list sorts on it (RediSearch then reads it from the hash),
    # and a sortable copy costs every memory bytes in the index.
    Field("event_date", OPTIONAL_TIME, "event_date", index=Index("numeric"), editable=True),
    Field("expires_at", OPTIONAL_TIME, None, index=Index("numeric")),
    Field("embedding", VECTOR, None, returned=False, index=Index("vector"), editable=True),
    # Kept in memstats:<id> (writing an indexed hash re-indexes it); selectors merge them in.
    Field("last_accessed_at", TIME, "last_accessed_at", returned=False, stored=False),
    Field("access_count", COUNT, "access_count", returned=False, stored=False),
)


class RecordSchema:
    """A record class and its fields. The encoder and decoder are generated once from the table
    (as dataclasses generates __init__): a loop calling a codec per field made search's decoding
    20% slower, and search builds tens of records per query."""

    def __init__(self, *, record: type[Memory], fields: tuple[Field, ...]) -> None:
        names = [f.name for f in fields]
        paths = [part for f in fields if f.attr for part in f.attr.split(".")]
        if len(set(names)) != len(names) or not all(n.isidentifier() for n in [*names, *paths]):
            raise ValueError(f"field names must be distinct identifiers: {names}")
        by_name = {f.name: f for f in fields}
        for f in fields:
            other = by_name.get(f.fallback or "")
            if f.fallback and (other is None or (f.returned and not other.returned)):
                raise ValueError(f"{f.name}: its fallback must be a field, returned whenever it is")
        self.record = record
        self.fields = fields
        self.return_fields: list[str] = [f.name for f in fields if f.returned]
        self.editable: frozenset[str] = frozenset(f.name for f in fields if f.editable)
        self.encode: Callable[..., dict[str, Any]] = self._compile_encoder()
        self.decode: Callable[..., Memory] = self._compile_decoder()
        # From an HMGET of return_fields, in that order (search's hot path: no dict in between).
        self.decode_returned: Callable[..., Memory] = self._compile_decoder(returned_values=True)

    def _compile_encoder(self) -> Callable[..., dict[str, Any]]:
        """encode(record, **given) -> the hash; fields without an attribute take their value from
        `given`, and a None value (or encoding) leaves the field out."""
        namespace: dict[str, Any] = {}
        lines = ["def encode(record, **given):", "    out = {}"]
        for i, f in enumerate(f for f in self.fields if f.stored):
            source = f"record.{f.attr}" if f.attr else f"given.get({f.name!r})"
            namespace[f"e{i}"] = f.codec.encode
            encoded = "value" if f.codec.encode is _same else f"e{i}(value)"
            lines += [f"    value = {source}", "    if value is not None:"]
            if f.codec.encode is _same:
                lines.append(f"        out[{f.name!r}] = value")
            else:
                lines += [
                    f"        value = {encoded}",
                    "        if value is not None:",
                    f"            out[{f.name!r}] = value",
                ]
        lines.append("    return out")
        exec("\n".join(lines), namespace)  # noqa: S102 - source built from the field table only
        return namespace["encode"]

    def _compile_decoder(self, *, returned_values: bool = False) -> Callable[..., Memory]:
        """decode(data, **state) -> a record from decoded text values (a missing field gets its
        codec's empty value); `state` sets attributes that are not stored (ttl_seconds, deleted).
        With returned_values: decode(values, **state) from the raw HMGET reply of return_fields."""
        namespace: dict[str, Any] = {"Record": self.record, "Scope": Scope}
        top: list[str] = []
        scope: list[str] = []
        position = {name: i for i, name in enumerate(self.return_fields)}
        for i, f in enumerate(self.fields):
            if not (f.decoded and f.attr):
                continue
            raw = self._raw(f.name, position, returned_values=returned_values)
            namespace[f"d{i}"] = f.codec.decode
            value = raw if f.codec.decode is _text else f"d{i}({raw})"
            if f.fallback:
                namespace[f"f{i}"] = f.fallback_decode
                other = self._raw(f.fallback, position, returned_values=returned_values)
                value = f"(d{i}(r{i}) if (r{i} := {raw}) else f{i}({other}))"
            group, _, attr = f.attr.rpartition(".")
            if group not in ("", "scope"):
                raise ValueError(f"{f.name}: only record and scope attributes can be stored")
            (scope if group else top).append(f"{attr}={value}")
        body = ", ".join([*top, f"scope=Scope({', '.join(scope)})", "**state"])
        head = "values" if returned_values else "data"
        get = "" if returned_values else "    get = data.get\n"
        exec(f"def decode({head}, **state):\n{get}    return Record({body})", namespace)  # noqa: S102
        return namespace["decode"]

    @staticmethod
    def _raw(name: str, position: Mapping[str, int], *, returned_values: bool) -> str:
        """Source of the expression giving a field's stored text ("" when missing)."""
        if not returned_values:
            return f"(get({name!r}) or '')"
        if name in position:
            return f"(values[{position[name]}] or b'').decode()"
        return "''"

    def index_fields(self, *, vector_attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The RedisVL field list of the index (a vector field gets `vector_attrs`)."""
        out: list[dict[str, Any]] = []
        for f in self.fields:
            if f.index is None:
                continue
            attrs = {**f.index.attrs, **(vector_attrs if f.index.kind == "vector" else {})}
            out.append({"name": f.name, "type": f.index.kind, **({"attrs": attrs} if attrs else {})})
        return out


MEMORY = RecordSchema(record=Memory, fields=FIELDS)
