"""One record schema (issue 15 item 3): the hash codec, RETURN_FIELDS and the RediSearch schema are
all derived from memory.schema.FIELDS, and adding a field is one table line."""

import hashlib
import json
from dataclasses import dataclass, replace

import numpy as np
from redisvl.index import SearchIndex

from core.embeddings import get_embedder
from memory import keys
from memory.index import ensure_index, index_name, schema
from memory.records import RETURN_FIELDS, from_hash, from_return_fields, to_hash
from memory.schema import FIELDS, INDEX_VERSION, MEMORY, TEXT, Field, Index, RecordSchema
from memory.types import Actor, ActorKind, Memory, MemoryType, Scope


def _full_memory() -> Memory:
    """A memory with every stored attribute set to something other than its default."""
    return Memory(
        id="01JTESTMEMORY0000000000001",
        text="User's cat is called Miso",
        type=MemoryType.EPISODIC,
        scope=Scope(user_id="Alice", agent_id="helper", namespace="work", session_id="s-1"),
        topics=["pets", "said-by:user"],
        entities=["miso"],
        event_date=1_700_000_000.25,
        created_at=1_700_000_001.5,
        updated_at=1_700_000_002.75,
        last_accessed_at=1_700_000_003.0,
        access_count=4,
        content_hash="0123456789abcdef0123456789abcdef",
        version=3,
        pinned=True,
        locked=True,
        source=["turn-1", "turn,2"],
        created_by=Actor(ActorKind.EXTRACTOR, "worker-1", model="gpt-test", prompt_version="v1"),
    )


def test_every_field_round_trips_through_the_real_hash(redis_client, settings):
    memory = _full_memory()
    vector = np.linspace(0, 1, 8, dtype=np.float32)
    redis_client.hset("roundtrip", mapping=to_hash(memory, embedding=vector, expires_at=1_800_000_000.5))
    stats = {b"last_accessed_at": b"1700000003.0", b"access_count": b"4"}

    assert from_hash({**redis_client.hgetall("roundtrip"), **stats}, ttl_seconds=7, deleted=True) == replace(
        memory, ttl_seconds=7, deleted=True
    )
    values = redis_client.hmget("roundtrip", RETURN_FIELDS)
    # Access stats live in memstats:<id>, not in the returned fields.
    assert from_return_fields(values) == replace(memory, last_accessed_at=0.0, access_count=0)
    assert redis_client.hget("roundtrip", "expires_at") == b"1800000000.5"
    assert (
        np.frombuffer(redis_client.hget("roundtrip", "embedding"), dtype=settings.VECTOR_DTYPE).tolist()
        == vector.astype(settings.VECTOR_DTYPE).tolist()
    )


def test_stored_bytes_are_the_ones_earlier_versions_wrote(redis_client):
    """An existing Redis keeps working: same field names, same encodings."""
    redis_client.hset("stored", mapping=to_hash(_full_memory(), embedding=None, expires_at=None))
    assert redis_client.hgetall("stored") == {
        b"id": b"01JTESTMEMORY0000000000001",
        b"text": b"User's cat is called Miso",
        b"type": b"episodic",
        b"topics": b"pets,said-by:user",
        b"entities": b"miso",
        b"user_id": b"Alice",
        b"agent_id": b"helper",
        b"namespace": b"work",
        b"session_id": b"s-1",
        b"created_at": b"1700000001.5",
        b"updated_at": b"1700000002.75",
        b"content_hash": b"0123456789abcdef0123456789abcdef",
        b"version": b"3",
        b"pinned": b"1",
        b"locked": b"1",
        b"source": b'["turn-1", "turn,2"]',
        b"source_turns": b"turn-1,turn 2",
        # Compact since issue 17 (kind|id|model|prompt_version); the JSON array and dict forms
        # earlier versions wrote still read.
        b"created_by": b"extractor|worker-1|gpt-test|v1",
        b"event_date": b"1700000000.25",
    }
    for earlier in (
        b'{"kind": "extractor", "id": "worker-1", "model": "gpt-test", "prompt_version": "v1"}',
        b'["extractor","worker-1","gpt-test","v1"]',
    ):
        stored = {**redis_client.hgetall("stored"), b"created_by": earlier}
        assert from_hash(stored) == from_hash(redis_client.hgetall("stored"))
        assert from_hash(stored).created_by == _full_memory().created_by


def test_a_compact_actor_keeps_only_what_it_has():
    memory = replace(_full_memory(), created_by=Actor(ActorKind.USER, "alice"))
    assert to_hash(memory, embedding=None, expires_at=None)["created_by"] == "user|alice"
    assert from_hash({b"id": b"m1", b"created_by": b"user|alice"}).created_by == Actor(
        ActorKind.USER, "alice"
    )
    # A part holding the separator keeps the JSON array form.
    odd = Actor(ActorKind.APP, "a|b", model="m")
    encoded = to_hash(replace(memory, created_by=odd), embedding=None, expires_at=None)["created_by"]
    assert encoded == '["app","a|b","m"]'
    assert from_hash({b"id": b"m1", b"created_by": encoded.encode()}).created_by == odd


def test_a_hash_without_optional_fields_reads_back_with_defaults():
    memory = from_hash({b"id": b"m1"})
    assert (memory.text, memory.type, memory.topics, memory.event_date, memory.version) == (
        "",
        "semantic",
        [],
        None,
        1,
    )
    assert memory.scope == Scope(user_id="", agent_id="", namespace="", session_id="")
    assert memory.created_by == Actor(ActorKind.SYSTEM)


def test_returned_fields_index_and_live_index_all_come_from_the_table(redis_client):
    assert [f.name for f in FIELDS if f.returned] == RETURN_FIELDS
    indexed = [f.name for f in FIELDS if f.index is not None]
    assert [f["name"] for f in schema(get_embedder().dims)["fields"]] == indexed
    ensure_index()
    info = redis_client.execute_command("FT.INFO", index_name())
    attributes = dict(zip(info[::2], info[1::2], strict=False))[b"attributes"]
    assert sorted(a[a.index(b"attribute") + 1].decode() for a in attributes) == sorted(indexed)


# The index definition of each schema version. Changed the table's `index=` specs? Bump
# memory.schema.INDEX_VERSION and add its fingerprint here (old Redis servers then rebuild with
# `manage.py memory_index rebuild`).
INDEX_FINGERPRINTS = {
    1: "eafe581ae4d30d3c",
    2: "644f6c4e818747d3",
    3: "ec5bf126ba5b1a7c",
    4: "d47aeb0bf56bd526",
}


def test_the_index_version_is_bumped_with_the_index_definition():
    definition = json.dumps(MEMORY.index_fields(vector_attrs={}), sort_keys=True)
    fingerprint = hashlib.sha256(definition.encode()).hexdigest()[:16]
    assert INDEX_FINGERPRINTS.get(INDEX_VERSION) == fingerprint, (
        f"the index definition changed (fingerprint {fingerprint}): bump INDEX_VERSION"
    )


@dataclass
class _MemoryWithLanguage(Memory):
    language: str = ""


def test_a_new_field_is_one_table_line_and_reaches_codec_returned_fields_and_index(redis_client):
    """The acceptance example: `language`, a TAG, added as one Field line (plus the attribute)."""
    extended = RecordSchema(
        record=_MemoryWithLanguage,
        fields=(*FIELDS, Field("language", TEXT, "language", index=Index("tag"))),
    )
    assert "language" in extended.return_fields
    fields = extended.index_fields(
        vector_attrs={"dims": 4, "distance_metric": "cosine", "algorithm": "flat", "datatype": "float32"}
    )
    assert {"name": "language", "type": "tag"} in fields
    SearchIndex.from_dict(
        {"index": {"name": "idx:lang", "prefix": "lang:", "storage_type": "hash"}, "fields": fields},
        redis_client=redis_client,
        validate_on_load=False,
    ).create()
    base = _full_memory()
    for n, language in enumerate(["fr", "en", "fr"]):
        record = _MemoryWithLanguage(**{**base.__dict__, "id": f"m{n}", "language": language})
        redis_client.hset(f"lang:m{n}", mapping=extended.encode(record, embedding=None, expires_at=None))
    assert redis_client.hget("lang:m0", "language") == b"fr"

    reply = redis_client.execute_command("FT.SEARCH", "idx:lang", "@language:{fr}", "NOCONTENT", "DIALECT", 2)
    assert sorted(k.decode() for k in reply[1:]) == ["lang:m0", "lang:m2"]
    found = extended.decode_returned(redis_client.hmget("lang:m2", extended.return_fields))
    assert isinstance(found, _MemoryWithLanguage)
    assert (found.id, found.language) == ("m2", "fr")
    decoded = extended.decode({"id": "m1", "language": "en"})
    assert isinstance(decoded, _MemoryWithLanguage)
    assert decoded.language == "en"


def test_the_engine_writes_memories_through_the_table(redis_client):
    from memory.services import add_memory

    memory = add_memory(
        text="User speaks Portuguese", scope=Scope(user_id="alice"), actor=Actor(ActorKind.USER, "u")
    )
    stored = redis_client.hgetall(keys.memory(memory.id))
    # Left out: what this memory has not (event date, expiry) and what holds its default.
    at_default = {"session_id", "pinned", "locked", "version", "source", "source_turns"}
    assert {k.decode() for k in stored} == {f.name for f in FIELDS if f.stored} - {
        "event_date",
        "expires_at",
        *at_default,
    }


# What an edit rewrote before the table carried the flag (memory/services.py's _EDITABLE at f700eb0).
EDITED_BEFORE_THE_FLAG = {
    "text",
    "type",
    "topics",
    "entities",
    "event_date",
    "content_hash",
    "version",
    "updated_at",
    "embedding",
}


def test_what_an_edit_rewrites_comes_from_the_table_and_nothing_else_moves(redis_client):
    from memory.access import Owner
    from memory.services import add_memory, update_memory

    assert MEMORY.editable == {f.name for f in FIELDS if f.editable} == EDITED_BEFORE_THE_FLAG
    user = Actor(ActorKind.USER, "u")
    memory = add_memory(
        text="User speaks Portuguese", scope=Scope(user_id="alice"), actor=user, pinned=True, topics=["lang"]
    )
    before = redis_client.hgetall(keys.memory(memory.id))
    update_memory(
        memory_id=memory.id, owner=Owner.user("alice"), actor=user, text="User speaks Portuguese and Dutch"
    )
    after = redis_client.hgetall(keys.memory(memory.id))
    moved = {k.decode() for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert {"text", "content_hash", "version", "updated_at", "embedding"} <= moved <= EDITED_BEFORE_THE_FLAG
    assert after[b"pinned"] == before[b"pinned"] == b"1"
