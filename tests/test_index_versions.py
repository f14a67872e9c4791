"""Index schema versions (issue 15 item 7): the index is `idx:memories:v<N>` behind the alias
`idx:memories`; `manage.py memory_index rebuild` builds the next version and switches over without
losing a memory, and a dropped index comes back by itself."""

import io
import time

import pytest
from django.core.management import CommandError, call_command
from redisvl.index import SearchIndex

from memory import index
from memory.index import (
    ensure_index,
    forget_index_cache,
    index_name,
    index_state,
    search_index,
    versioned_name,
)
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.selectors import get_memory
from memory.services import add_memory
from tests.memory_helpers import ANYONE, USER, scope


def _indexes(redis_client) -> list[str]:
    return sorted(name.decode() for name in redis_client.execute_command("FT._LIST"))


def _found(question: str) -> list[str]:
    result = search_memories(filter=MemoryFilter.build(user_id="alice"), text=question, threshold=0)
    return [hit.memory.text for hit in result.hits]


def _wait_indexed(redis_client, name: str) -> None:
    for _ in range(100):
        info = redis_client.ft(name).info()
        if float(info["percent_indexed"]) >= 1 and not int(info["indexing"]):
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never finished indexing")


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command("memory_index", *args, stdout=out)
    return out.getvalue()


def _make_unversioned_index(redis_client) -> None:
    """The index as every release before versions made it: named like today's alias."""
    spec = search_index().schema.to_dict()
    spec["index"]["name"] = index_name()
    SearchIndex.from_dict(spec, redis_client=redis_client, validate_on_load=False).create()


def test_a_fresh_redis_gets_the_current_version_behind_the_alias(redis_client):
    memory = add_memory(text="User's cat is called Miso", scope=scope(), actor=USER)
    assert _indexes(redis_client) == [versioned_name()]
    assert versioned_name().endswith(f":idx:memories:v{index.INDEX_VERSION}")
    state = index_state()
    assert state is not None
    assert (state["serving"], state["version"], state["rebuild_needed"]) == (
        versioned_name(),
        index.INDEX_VERSION,
        False,
    )
    assert _found("what is my cat called?") == [memory.text]
    assert "nothing to do" in _command("status")


def test_an_unversioned_index_serves_before_during_and_after_the_rebuild(redis_client, caplog):
    _make_unversioned_index(redis_client)
    texts = ["User's cat is called Miso", "User lives in Porto", "User plays the cello"]
    ids = [add_memory(text=text, scope=scope(), actor=USER).id for text in texts]
    assert _indexes(redis_client) == [index_name()]  # kept serving, no second index built
    assert "memory_index rebuild" in caplog.text
    state = index_state()
    assert state is not None and (state["version"], state["rebuild_needed"]) == (0, True)
    assert "version 0" in _command("status") and "memory_index rebuild" in _command("status")
    assert _found("where do I live?")[0] == "User lives in Porto"

    during: list[tuple[list[str], str, str]] = []

    def say(line: str) -> None:
        if not during:  # the new version exists but searches still go to the old index
            serving = index.serving_index()
            assert serving is not None
            during.append((_indexes(redis_client), serving.name, _found("what instrument do I play?")[0]))

    assert index.rebuild(say=say, poll_seconds=0.01) is True
    assert during == [(sorted([index_name(), versioned_name()]), index_name(), "User plays the cello")]
    assert _indexes(redis_client) == [versioned_name()]
    assert [get_memory(owner=ANYONE, memory_id=i).text for i in ids] == texts  # no document was dropped
    assert _found("what is my cat called?")[0] == "User's cat is called Miso"
    state = index_state()
    assert state is not None and (state["serving"], state["documents"]) == (versioned_name(), 3)


def test_an_older_version_serves_until_the_rebuild_switches_to_the_new_one(redis_client, monkeypatch):
    add_memory(text="User lives in Porto", scope=scope(), actor=USER)
    old = versioned_name()
    monkeypatch.setattr(index, "INDEX_VERSION", index.INDEX_VERSION + 1)
    forget_index_cache()
    ensure_index()
    assert _indexes(redis_client) == [old]
    assert "memory_index rebuild" in _command("status")

    output = _command("rebuild")
    assert _indexes(redis_client) == [versioned_name()] and versioned_name() != old
    assert _found("where do I live?") == ["User lives in Porto"]
    assert f"Searches now use version {index.INDEX_VERSION}." in output and "no memory was deleted" in output


def test_a_second_rebuild_does_nothing_and_every_line_is_plain_words(redis_client):
    _make_unversioned_index(redis_client)
    add_memory(text="User lives in Porto", scope=scope(), actor=USER)
    first = _command("rebuild")
    second = _command("rebuild")
    assert _indexes(redis_client) == [versioned_name()]
    assert second.strip() == f"The memory index is at version {index.INDEX_VERSION} already; nothing to do."
    for line in [*first.splitlines(), *second.splitlines()]:
        # Index names carry the memory slot's hash tag `{m}` (README, "Redis Cluster"): not words.
        words = line.replace(versioned_name(), "").replace(index_name(), "")
        assert line[0].isupper() and line.endswith(".") and not any(c in words for c in "{}[]<>'\""), line
    assert "Indexing: 100% done, 1 memory indexed so far." in first


def test_status_names_the_serving_index_once_and_says_what_to_do(redis_client):
    _make_unversioned_index(redis_client)
    add_memory(text="User lives in Porto", scope=scope(), actor=USER)
    lines = _command("status").splitlines()
    assert lines[0] == f"The memory index {index_name()} is version 0, holding 1 memory, 100% indexed."
    assert "memory_index rebuild" in lines[1]


def test_the_command_says_plainly_when_redis_is_not_running(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    for action in ("status", "rebuild"):
        with pytest.raises(
            CommandError, match=r"^Redis is not reachable, so the index was not touched: start it"
        ):
            _command(action)


def test_a_dropped_index_is_recreated_by_a_request_soon_after(redis_client, monkeypatch):
    memory = add_memory(text="User's cat is called Miso", scope=scope(), actor=USER)
    redis_client.execute_command("FT.DROPINDEX", index_name())  # documents stay
    assert _indexes(redis_client) == []
    monkeypatch.setattr(index, "RECHECK_SECONDS", 0.05)
    time.sleep(0.06)
    ensure_index()
    assert _indexes(redis_client) == [versioned_name()]
    _wait_indexed(redis_client, index_name())
    assert _found("what is my cat called?") == [memory.text]


def test_the_recheck_costs_nothing_between_intervals(redis_client):
    ensure_index()
    redis_client.execute_command("FT.DROPINDEX", index_name())
    ensure_index()  # within RECHECK_SECONDS: no Redis call, so nothing is recreated yet
    assert _indexes(redis_client) == []


@pytest.mark.parametrize("name", [versioned_name(7), index_name()])
def test_versions_are_read_from_index_names(name):
    assert index._version_of(name) == (7 if name.endswith("v7") else index.UNVERSIONED)


@pytest.mark.django_db
def test_the_status_page_says_a_rebuild_is_needed(client, django_user_model, redis_client):
    from tests.test_pages import _staff

    _make_unversioned_index(redis_client)
    add_memory(text="User lives in Porto", scope=scope(), actor=USER)
    client.force_login(_staff(django_user_model))
    assert client.get("/inspector/status.json").json()["index"]["rebuild_needed"] is True
    assert (
        "run <code>python manage.py memory_index rebuild</code>"
        in client.get("/inspector/status/").content.decode()
    )
    call_command("memory_index", "rebuild", stdout=io.StringIO())
    assert client.get("/inspector/status.json").json()["index"]["rebuild_needed"] is False
    assert "memory_index rebuild" not in client.get("/inspector/status/").content.decode()


SHADOW_WARNING = "hides the alias"


def test_an_unversioned_index_made_after_a_rebuild_is_named_and_searches_keep_working(redis_client, caplog):
    """An older release (or redisvl's exists(), which sees real names only) made an index named like
    the alias after a rebuild: it shadows the alias. Ensuring the index warns once, never raises."""
    memory = add_memory(text="User's cat is called Miso", scope=scope(), actor=USER)
    _make_unversioned_index(redis_client)
    _wait_indexed(redis_client, index_name())
    for _ in range(2):
        index._checked.clear()  # as after RECHECK_SECONDS
        ensure_index()
    assert caplog.text.count(SHADOW_WARNING) == 1
    assert f"FT.DROPINDEX {index_name()}" in caplog.text
    assert _indexes(redis_client) == sorted([index_name(), versioned_name()])  # nothing else was made
    assert _found("what is my cat called?") == [memory.text]

    redis_client.execute_command("FT.DROPINDEX", index_name())  # the recovery NOTES.md gives
    assert "nothing to do" in _command("rebuild")
    assert _indexes(redis_client) == [versioned_name()]
    assert _found("what is my cat called?") == [memory.text]


def test_an_index_named_like_the_alias_made_during_ensure_index_does_not_fail_it(
    redis_client, monkeypatch, caplog
):
    """The older process creates its index between our check and FT.ALIASUPDATE, which then says
    "Alias does not belong to provided spec"."""
    memory = add_memory(text="User's cat is called Miso", scope=scope(), actor=USER)
    redis_client.execute_command("FT.DROPINDEX", versioned_name())  # documents stay
    _make_unversioned_index(redis_client)
    serving_index = index.serving_index
    calls: list[None] = []

    def not_there_yet_the_first_time() -> index.Serving | None:
        calls.append(None)
        return None if len(calls) == 1 else serving_index()

    monkeypatch.setattr(index, "serving_index", not_there_yet_the_first_time)
    forget_index_cache()
    ensure_index()
    assert SHADOW_WARNING in caplog.text
    assert _indexes(redis_client) == sorted([index_name(), versioned_name()])
    _wait_indexed(redis_client, index_name())
    assert _found("what is my cat called?") == [memory.text]


def _make_float32_v1_index(redis_client) -> None:
    """The index as version 1 made it (before float16 vectors): `v1`, FLOAT32, behind the alias."""
    spec = search_index().schema.to_dict()
    spec["index"]["name"] = versioned_name(1, dtype="float16")  # v1 names carried no dtype
    for field in spec["fields"]:
        if field["type"] == "vector":
            field["attrs"]["datatype"] = "float32"
    SearchIndex.from_dict(spec, redis_client=redis_client, validate_on_load=False).create()
    redis_client.execute_command("FT.ALIASADD", index_name(), spec["index"]["name"])
    forget_index_cache()


def test_an_install_on_a_float32_index_keeps_working_and_rebuild_converts_every_vector(
    redis_client, settings
):
    from memory import keys
    from memory.services import delete_memory, restore_memory

    assert settings.VECTOR_DTYPE == "float16"  # the default for new installs
    _make_float32_v1_index(redis_client)
    kept = add_memory(text="User plays the cello", scope=scope(), actor=USER)
    trashed = add_memory(text="User lives in Porto", scope=scope(), actor=USER)
    # The serving index decides: until the rebuild, vectors are written and queried as float32.
    assert len(redis_client.hget(keys.memory(kept.id), "embedding")) == 384 * 4
    assert _found("cello music")[0] == "User plays the cello"
    delete_memory(memory_id=trashed.id, owner=ANYONE, actor=USER)

    out = _command("rebuild")
    assert "Converted the vectors of 2 memories to float16" in out
    state = index_state()
    assert state is not None and (state["version"], state["dtype"]) == (index.INDEX_VERSION, "float16")
    assert state["documents"] == 1 and not state["rebuild_needed"]
    assert len(redis_client.hget(keys.memory(kept.id), "embedding")) == 384 * 2
    assert len(redis_client.hget(keys.trash(trashed.id), "embedding")) == 384 * 2
    assert _found("cello music")[0] == "User plays the cello"
    restore_memory(memory_id=trashed.id, owner=ANYONE, actor=USER)
    assert _found("where does the user live")[0] == "User lives in Porto"
    # Exact duplicates (nearest neighbours + content_hash since v3) and history survive the move.
    from memory.selectors import find_exact_duplicates, memory_history

    alice = MemoryFilter.build(user_id="alice")
    assert [m.id for m in find_exact_duplicates(filter=alice, text="user plays the CELLO")] == [kept.id]
    assert [e.event for e in memory_history(memory_id=kept.id)] == ["added"]
    assert [e.event for e in memory_history(memory_id=trashed.id)] == ["added", "deleted", "restored"]
    assert _command("rebuild").strip().endswith("nothing to do.")


def test_a_current_index_that_left_out_float32_vectors_says_so_and_rebuild_converts_them(redis_client):
    """A first start that died mid-migration left float32 vectors under the current float16 index:
    RediSearch leaves those memories out (hash_indexing_failures), so searches never find them."""
    from memory import keys

    kept = add_memory(text="User plays the cello", scope=scope(), actor=USER)
    index.convert_vectors(to_dtype="float32")  # as the older release stored them
    assert len(redis_client.hget(keys.memory(kept.id), "embedding")) == 384 * 4
    state = index_state()
    assert state is not None and state["documents"] == 0
    assert state["vectors_to_convert"] and state["rebuild_needed"]
    assert "vectors of another type" in _command("status")

    out = _command("rebuild")

    assert "converted 1 memory to float16, so searches find them now" in out
    assert len(redis_client.hget(keys.memory(kept.id), "embedding")) == 384 * 2
    _wait_indexed(redis_client, versioned_name())
    state = index_state()
    assert state is not None and state["documents"] == 1 and not state["rebuild_needed"]
    assert _found("cello music") == ["User plays the cello"]
    assert "nothing to do" in _command("status") and "nothing to do" in _command("rebuild")


def test_a_search_with_the_dtype_of_an_index_switched_meanwhile_asks_again(redis_client, settings):
    """For up to RECHECK_SECONDS after another process's rebuild switched the dtype, this one still
    has the old dtype cached: the index refuses its query vector, and the search asks again."""
    add_memory(text="User plays the cello", scope=scope(), actor=USER)
    assert index.vector_dtype() == "float16"
    index._serving_dtype[(settings.REDIS_URL, index_name())] = "float32"  # cached before the switch

    assert _found("cello music") == ["User plays the cello"]
    assert index.vector_dtype() == "float16"
