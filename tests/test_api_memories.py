"""Issue 16 item 1: long-term memories over /api/v1/memories (create in batches with an
Idempotency-Key, get, update with If-Match, delete / restore, history, pin / lock, TTL), each call
confined by its API key and recorded in history with the key as actor."""

from __future__ import annotations

from typing import Any

import pytest

from memory import keys
from memory.selectors import get_memory, memory_history
from tests.api_helpers import ApiClient, make_key
from tests.memory_helpers import ANYONE

pytestmark = pytest.mark.django_db

BASE = "/api/v1/memories"


@pytest.fixture
def staff() -> ApiClient:
    return ApiClient(make_key("support-desk")[1])


@pytest.fixture
def app() -> ApiClient:
    return ApiClient(make_key("notes-app", role="app", agent_id="notes", namespaces=["work", "home"])[1])


def item(text: str, user_id: str = "alice", **extra: Any) -> dict[str, Any]:
    return {"text": text, "user_id": user_id, **extra}


def create(client: ApiClient, *items: dict[str, Any], **headers: str) -> Any:
    response = client.post(BASE, {"memories": list(items)}, headers=headers)
    assert response.status_code == 201, response.content
    return response.json()["memories"]


def memory_count(redis_client: Any) -> int:
    return sum(1 for _ in redis_client.scan_iter(match="*:mem:*"))


def without_ttl(memories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # What is left of a lifetime is read at the time of the answer; everything else must be equal.
    return [{k: v for k, v in m.items() if k != "ttl_seconds"} for m in memories]


# --- Create and read ---------------------------------------------------------------------------


def test_a_batch_is_added_and_each_memory_read_back_with_its_version_as_etag(redis_client, staff) -> None:
    made = create(
        staff,
        item("Alice drinks green tea", topics=["Drinks"], type="semantic"),
        item("Alice flies to Lisbon", type="episodic", event_date=1_900_000_000.0, namespace="travel"),
    )
    assert [m["text"] for m in made] == ["Alice drinks green tea", "Alice flies to Lisbon"]
    assert made[0]["topics"] == ["drinks"] and made[1]["scope"]["namespace"] == "travel"
    assert made[0]["created_by"] == {
        "kind": "staff",
        "id": "api-key:support-desk",
        "model": "",
        "prompt_version": "",
    }
    response = staff.get(f"{BASE}/{made[1]['id']}")
    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    body = response.json()
    assert body["id"] == made[1]["id"] and body["event_date"] == 1_900_000_000.0 and body["deleted"] is False
    assert get_memory(memory_id=made[0]["id"], owner=ANYONE).text == "Alice drinks green tea"


def test_bad_items_add_nothing_and_answer_a_problem(redis_client, staff) -> None:
    bad: dict[str, Any]
    for bad in (
        {"memories": []},
        {"memories": [item("ok"), item("")]},
        {"memories": [item("ok"), item("x", user_id="a,b")]},
        {"memories": [item("ok", type="gossip")]},
        {"memories": [item("ok", ttl_seconds=0)]},
        {"memories": [item("ok", event_date=1e300)]},
        {"memories": [item("ok", surprise=1)]},
        {"memories": [item("x" * 100_000)]},
    ):
        response = staff.post(BASE, bad)
        assert response.status_code == 422, (bad, response.content)
        assert response["Content-Type"] == "application/problem+json"
    assert memory_count(redis_client) == 0


def test_the_same_idempotency_key_and_batch_twice_adds_one_set_and_the_same_answer(
    redis_client, staff
) -> None:
    batch = [item("Alice likes jazz"), item("Alice has a cat", ttl_seconds=3600)]
    first = create(staff, *batch, **{"Idempotency-Key": "order-42"})
    again = create(staff, *batch, **{"Idempotency-Key": "order-42"})
    assert without_ttl(again) == without_ttl(first)
    assert memory_count(redis_client) == 2
    # Another key is another request.
    create(staff, *batch, **{"Idempotency-Key": "order-43"})
    assert memory_count(redis_client) == 4


def test_an_idempotency_key_reused_for_another_batch_is_refused_and_adds_nothing(redis_client, staff) -> None:
    create(staff, item("Alice likes jazz"), **{"Idempotency-Key": "k1"})
    response = staff.post(BASE, {"memories": [item("Alice likes metal")]}, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["detail"]
    assert memory_count(redis_client) == 1


def test_idempotency_keys_are_per_api_key_so_two_apps_never_collide(redis_client, app) -> None:
    other = ApiClient(make_key("other-app", role="app", agent_id="other", namespaces=["work"])[1])
    batch = [item("Alice likes jazz")]
    mine = create(app, *batch, **{"Idempotency-Key": "same"})
    theirs = create(other, *batch, **{"Idempotency-Key": "same"})
    assert mine[0]["id"] != theirs[0]["id"]
    assert (mine[0]["scope"]["agent_id"], theirs[0]["scope"]["agent_id"]) == ("notes", "other")
    assert memory_count(redis_client) == 2


def test_an_idempotency_key_never_names_another_requests_marker_or_item(redis_client, app) -> None:
    """Item markers were "<request key>:<n>": a request keyed "k:0" wrote what item 0 of a request
    keyed "k" later read as its memory id (404, yet its second item was stored)."""
    create(app, item("Alice likes tea"), **{"Idempotency-Key": "k:0"})
    batch = [item("Alice likes coffee"), item("Alice rides a bike")]
    first = create(app, *batch, **{"Idempotency-Key": "k"})
    assert [m["text"] for m in first] == ["Alice likes coffee", "Alice rides a bike"]
    again = create(app, *batch, **{"Idempotency-Key": "k"})
    assert [m["id"] for m in again] == [m["id"] for m in first], "the retry is answered, not refused"
    assert memory_count(redis_client) == 3


def test_a_replay_whose_memory_was_since_purged_is_409_gone_not_404(redis_client, app) -> None:
    [made] = create(app, item("Alice likes jazz"), **{"Idempotency-Key": "order-7"})
    assert app.delete(f"{BASE}/{made['id']}").status_code == 200
    redis_client.delete(keys.trash(made["id"]))  # the grace period ended: purged
    replay = app.post(BASE, {"memories": [item("Alice likes jazz")]}, headers={"Idempotency-Key": "order-7"})
    assert replay.status_code == 409, replay.content
    body = replay.json()
    assert body["title"] == "gone" and made["id"] in body["detail"] and "new key" in body["detail"]
    assert memory_count(redis_client) == 0, "nothing was added again"


# --- Update with If-Match ----------------------------------------------------------------------


def test_a_stale_if_match_is_412_and_the_memory_is_unchanged(redis_client, staff) -> None:
    [made] = create(staff, item("Alice lives in Lisbon"))
    path = f"{BASE}/{made['id']}"
    first = staff.patch(path, {"text": "Alice lives in Porto"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200, first.content
    assert first.json()["version"] == 2 and first["ETag"] == '"2"'
    stale = staff.patch(path, {"text": "Alice lives in Faro"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale["Content-Type"] == "application/problem+json"
    assert stale.json()["status"] == 412
    now = get_memory(memory_id=made["id"], owner=ANYONE)
    assert (now.text, now.version) == ("Alice lives in Porto", 2)
    assert [e.version for e in memory_history(memory_id=made["id"])] == [1, 2]


def test_if_match_forms_and_a_patch_without_one(redis_client, staff) -> None:
    [made] = create(staff, item("Alice lives in Lisbon"))
    path = f"{BASE}/{made['id']}"
    assert staff.patch(path, {"topics": ["home"]}, headers={"If-Match": 'W/"1"'}).status_code == 200
    assert staff.patch(path, {"type": "episodic"}, headers={"If-Match": "2"}).status_code == 200
    assert staff.patch(path, {"event_date": 1_900_000_000}, headers={"If-Match": "*"}).status_code == 200
    cleared = staff.patch(path, {"event_date": None})
    assert cleared.status_code == 200 and cleared.json()["event_date"] is None
    for junk in ("version 1", "1, 2", "9" * 40, '"-1"'):
        assert staff.patch(path, {"text": "x"}, headers={"If-Match": junk}).status_code == 422
    assert staff.patch(path, {}).status_code == 422  # nothing to change
    assert get_memory(memory_id=made["id"], owner=ANYONE).version == 5


# --- Delete, restore, history ------------------------------------------------------------------


def test_every_change_through_the_api_is_history_with_the_key_as_actor(redis_client, staff, app) -> None:
    [made] = create(app, item("Alice plays chess"))
    path = f"{BASE}/{made['id']}"
    assert app.patch(path, {"text": "Alice plays chess on Sundays"}).status_code == 200
    assert app.put(f"{path}/ttl", {"ttl_seconds": 7200}).status_code == 200
    assert app.post(f"{path}/ttl/extend", {"seconds": 60}).status_code == 200
    deleted = app.delete(f"{path}?reason=user+asked")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert app.get(path).json()["deleted"] is True
    assert app.post(f"{path}/restore").status_code == 200
    assert staff.post(f"{path}/pin", {"pinned": True}).status_code == 200
    assert staff.post(f"{path}/lock", {"locked": True, "reason": "checked"}).status_code == 200
    events = [(e.event, e.actor.kind, e.actor.id) for e in memory_history(memory_id=made["id"])]
    assert [e[0] for e in events] == [
        "added",
        "updated",
        "ttl_changed",
        "ttl_changed",
        "deleted",
        "restored",
        "pinned",
        "locked",
    ]
    app_actor, staff_actor = ("app", "api-key:notes-app"), ("staff", "api-key:support-desk")
    assert [e[1:] for e in events] == [app_actor] * 6 + [staff_actor] * 2
    assert memory_history(memory_id=made["id"])[4].reason == "user asked"


def test_history_pages_with_an_opaque_cursor(redis_client, staff) -> None:
    [made] = create(staff, item("Alice reads"))
    path = f"{BASE}/{made['id']}"
    for n in range(4):
        assert staff.patch(path, {"text": f"Alice reads {n} books"}).status_code == 200
    versions, cursor, pages = [], None, 0
    while True:
        page = staff.get(f"{path}/history", data={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.content
        body = page.json()
        versions += [e["version"] for e in body["events"]]
        assert all(e["actor"]["id"] == "api-key:support-desk" for e in body["events"])
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
        assert not cursor.isdigit()
    assert (versions, pages) == ([1, 2, 3, 4, 5], 3)
    for junk in ("not-a-cursor", "MTI=", "%%%", "cDE6LTE"):
        response = staff.get(f"{path}/history", data={"cursor": junk})
        assert response.status_code == 422, junk
    events = staff.get(f"{path}/history").json()["events"]
    assert events[1]["old"]["text"] == "Alice reads" and events[1]["new"]["text"] == "Alice reads 0 books"


# --- TTL ---------------------------------------------------------------------------------------


def test_ttl_get_set_extend_and_forever(redis_client, staff) -> None:
    [made] = create(staff, item("Alice is in Rome this week", ttl_seconds=600))
    path = f"{BASE}/{made['id']}/ttl"
    assert 590 <= staff.get(path).json()["ttl_seconds"] <= 600
    set_ = staff.put(path, {"ttl_seconds": 3600})
    assert set_.status_code == 200 and set_.json()["version"] == 2
    extended = staff.post(f"{path}/extend", {"seconds": 400}).json()
    assert 3990 <= extended["ttl_seconds"] <= 4000
    forever = staff.put(path, {"ttl_seconds": None}).json()
    assert forever["ttl_seconds"] is None and staff.get(path).json()["ttl_seconds"] is None
    refused = staff.post(f"{path}/extend", {"seconds": 10})
    assert refused.status_code == 422 and "does not expire" in refused.json()["detail"]
    for bad in ({"ttl_seconds": 0}, {"ttl_seconds": -5}, {"ttl_seconds": 10**20}, {"ttl_seconds": "soon"}):
        assert staff.put(path, bad).status_code == 422


# --- Staff flags -------------------------------------------------------------------------------


def test_an_app_key_may_not_pin_or_lock_even_its_own_memory(redis_client, app) -> None:
    [made] = create(app, item("Alice is vegan"))
    for flag, body in (("pin", {"pinned": True}), ("lock", {"locked": True})):
        response = app.post(f"{BASE}/{made['id']}/{flag}", body)
        assert response.status_code == 403, response.content
        assert response["Content-Type"] == "application/problem+json"
    memory = get_memory(memory_id=made["id"], owner=ANYONE)
    assert (memory.pinned, memory.locked, memory.version) == (False, False, 1)


@pytest.mark.parametrize("flag", ["pin", "lock"])
def test_an_app_key_cannot_change_a_pinned_or_locked_memory(redis_client, staff, app, flag) -> None:
    [made] = create(app, item("Alice is allergic to nuts"))
    path = f"{BASE}/{made['id']}"
    assert (
        staff.post(f"{path}/{flag}", {flag + "ned" if flag == "pin" else "locked": True}).status_code == 200
    )
    for response in (
        app.patch(path, {"text": "Alice is not allergic"}),
        app.delete(path),
        app.put(f"{path}/ttl", {"ttl_seconds": 60}),
    ):
        assert response.status_code == 409, response.content
        assert response.json()["title"] == "locked"
    memory = get_memory(memory_id=made["id"], owner=ANYONE)
    assert (memory.text, memory.deleted, memory.version) == ("Alice is allergic to nuts", False, 2)
    # Staff still may.
    assert staff.patch(path, {"text": "Alice is allergic to peanuts"}).status_code == 200


# --- Confinement -------------------------------------------------------------------------------

HOSTILE_IDS = [
    "*",
    "a/b",
    "../other",
    "@user_id:{alice}",
    "a|b",
    "{}",
    "x" * 5000,
    "-x",
    "(a)",
    "%",
    "01J*",
    "..",
    "\\",
]


def by_id_calls(client: ApiClient, memory_id: str) -> dict[str, Any]:
    path = f"{BASE}/{memory_id}"
    return {
        "get": client.get(path),
        "patch": client.patch(path, {"text": "changed by someone else"}),
        "patch_if_match": client.patch(path, {"text": "changed"}, headers={"If-Match": '"1"'}),
        "delete": client.delete(path),
        "restore": client.post(f"{path}/restore"),
        "history": client.get(f"{path}/history"),
        "ttl": client.get(f"{path}/ttl"),
        "set_ttl": client.put(f"{path}/ttl", {"ttl_seconds": 60}),
        "extend_ttl": client.post(f"{path}/ttl/extend", {"seconds": 60}),
    }


def test_an_app_key_never_reaches_another_apps_or_namespaces_memory(redis_client, staff, app) -> None:
    other = ApiClient(make_key("other-app", role="app", agent_id="other", namespaces=["work"])[1])
    [theirs] = create(other, item("Alice's secret diary", namespace="work"))
    # The app's own agent, but a namespace it was not given.
    [elsewhere] = create(staff, item("Alice's salary", agent_id="notes", namespace="finance"))
    [staff_own] = create(staff, item("Alice's ticket"))
    missing = "01JZZZZZZZZZZZZZZZZZZZZZZZ"
    answers_for_missing = by_id_calls(app, missing)
    assert {name: r.status_code for name, r in answers_for_missing.items()} == dict.fromkeys(
        answers_for_missing, 404
    )
    for foreign in (theirs, elsewhere, staff_own):
        answers = by_id_calls(app, foreign["id"])
        for name, response in answers.items():
            assert response.status_code == 404, (name, response.content)
            expected = answers_for_missing[name].json()["detail"].replace(missing, foreign["id"])
            assert response.json()["detail"] == expected, name
            assert foreign["text"] not in response.content.decode()
    for hostile in HOSTILE_IDS:
        for name, response in by_id_calls(app, hostile).items():
            assert response.status_code == 404, (hostile[:20], name, response.content)
    # Nothing foreign changed.
    for foreign in (theirs, elsewhere, staff_own):
        memory = get_memory(memory_id=foreign["id"], owner=ANYONE)
        assert (memory.version, memory.deleted, memory.text) == (1, False, foreign["text"])
        assert [e.event for e in memory_history(memory_id=foreign["id"])] == ["added"]


def test_an_app_key_writes_only_into_its_own_agent_and_namespaces(redis_client, app) -> None:
    made = create(
        app, item("Alice works remotely", session_id="chat-1"), item("Alice gardens", namespace="home")
    )
    assert [(m["scope"]["agent_id"], m["scope"]["namespace"]) for m in made] == [
        ("notes", "work"),
        ("notes", "home"),
    ]
    # The app reads its session id back as it named it, though it is stored under its agent.
    assert made[0]["scope"]["session_id"] == "chat-1"
    assert get_memory(memory_id=made[0]["id"], owner=ANYONE).scope.session_id == "notes/chat-1"
    for refused in (item("x", namespace="finance"), item("x", agent_id="other")):
        response = app.post(BASE, {"memories": [item("ok"), refused]})
        assert response.status_code == 403, response.content
    assert memory_count(redis_client) == 2
