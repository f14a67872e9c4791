"""The memory inspector over HTTP: permissions, every action's effect on Redis and on history,
escaping, hostile ids, invalid filters, the sandbox's read-only promise, htmx fragments."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from inspector.consumers import render_feed_entry
from inspector.converters import decode_key, encode_key
from inspector.diff import reconstruct, word_diff
from inspector.presenters import duration_text
from memory import keys, working
from memory.extraction import dead_letters, queue
from memory.prompt import build_prompt
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.selectors import deleted_memories, get_memory, list_memories, memory_history, memory_ttl
from memory.services import add_memory, delete_memory, set_ttl, update_memory
from memory.types import ActorKind, MemoryLocked, MemoryNotFound, Scope
from tests.extraction_helpers import say
from tests.memory_helpers import ANYONE, EXTRACTOR, USER

pytestmark = pytest.mark.django_db

OWNER = "user-1"
XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
HX = {"HX-Request": "true"}


# --- Fixtures -------------------------------------------------------------------------------------


def _user(username: str, *, staff: bool = False, perms: tuple[str, ...] = (), superuser: bool = False) -> Any:
    model = get_user_model()
    if superuser:
        return model.objects.create_superuser(username, password=f"pw-{username}-12345")
    user = model.objects.create_user(username, password=f"pw-{username}-12345", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="memory", codename=codename))
    return user


@pytest.fixture
def viewer() -> Any:
    return _user("vera", staff=True, perms=("view_memories",))


@pytest.fixture
def editor() -> Any:
    return _user("eddie", staff=True, perms=("change_memories",))


@pytest.fixture
def as_viewer(client: Client, viewer: Any) -> Client:
    client.force_login(viewer)
    return client


@pytest.fixture
def as_editor(client: Client, editor: Any) -> Client:
    client.force_login(editor)
    return client


def staff_id(user: Any) -> str:
    return f"staff-{user.pk}:{user.username}"


def _add(text: str, user_id: str = OWNER, **kwargs: Any) -> Any:
    return add_memory(text=text, scope=Scope(user_id=user_id), actor=USER, **kwargs)


@pytest.fixture
def memory() -> Any:
    return _add("User lives in Lisbon.", topics=["home"])


def url(name: str, **kwargs: str) -> str:
    return reverse(f"inspector:{name}", kwargs=kwargs)


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def _dead_letter(user_id: str = OWNER, session_id: str = "s-dead") -> str:
    say(user_id, session_id, "I live in Lisbon.")
    turns = queue.pending_turns(session_id, after=0)
    dead_letters.dead_letter(
        session_id=session_id, user_id=user_id, turns=turns, error="model exploded", entries=[]
    )
    return dead_letters.dead_letters()[0].id


# --- Permissions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    name: str
    login: bool = True
    staff: bool = False
    perms: tuple[str, ...] = ()
    superuser: bool = False


ANONYMOUS = Who("anonymous", login=False)
PLAIN = Who("plain")
STAFF_NO_PERMS = Who("staff-no-perms", staff=True)
VIEWER = Who("viewer", staff=True, perms=("view_memories",))
EDITOR = Who("editor", staff=True, perms=("change_memories",))
BOTH = Who("both", staff=True, perms=("view_memories", "change_memories"))
SUPERUSER = Who("superuser", superuser=True)
# A permission alone is not enough: the inspector is for staff accounts only.
NON_STAFF_WITH_PERMS = Who("customer-with-perms", perms=("view_memories", "change_memories"))
EVERYONE = [ANONYMOUS, PLAIN, STAFF_NO_PERMS, VIEWER, EDITOR, BOTH, SUPERUSER, NON_STAFF_WITH_PERMS]
MAY_VIEW = {"viewer", "editor", "both", "superuser"}
MAY_CHANGE = {"editor", "both", "superuser"}


def _client_as(who: Who) -> Client:
    client = Client()
    if who.login:
        client.force_login(_user(who.name, staff=who.staff, perms=who.perms, superuser=who.superuser))
    return client


def _pages(memory_id: str) -> list[str]:
    working.ensure_session(session_id="s1", user_id=OWNER)
    return [
        url("inspector"),
        url("user_lookup") + f"?user_id={OWNER}",
        url("user", user_id=OWNER),
        url("user", user_id=OWNER) + "?q=Lisbon&mode=keyword",
        url("export", user_id=OWNER),
        url("sandbox", user_id=OWNER),
        url("session", session_id="s1"),
        url("memory", memory_id=memory_id),
    ]


@pytest.mark.parametrize("who", EVERYONE, ids=lambda w: w.name)
def test_pages_permission_matrix(who: Who, memory: Any) -> None:
    client = _client_as(who)
    for page in _pages(memory.id):
        response = client.get(page)
        if not who.login:
            assert response.status_code == 302, page
            assert response["Location"].startswith("/accounts/login/?next="), page
        elif who.name in MAY_VIEW:
            assert response.status_code in (200, 302), (page, response.status_code)
        else:
            assert response.status_code == 403, page
            assert b"Not allowed" in response.content


def _mutations(memory_id: str, letter_id: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (
            url("edit", memory_id=memory_id),
            {"text": "User lives in Porto.", "type": "semantic", "expected_version": "1"},
        ),
        (url("pin", memory_id=memory_id), {"value": "1"}),
        (url("lock", memory_id=memory_id), {"value": "1"}),
        (url("set_ttl", memory_id=memory_id), {"amount": "2", "unit": "hours"}),
        (url("extend_ttl", memory_id=memory_id), {"amount": "1", "unit": "hours"}),
        (url("persist", memory_id=memory_id), {}),
        (url("restore_version", memory_id=memory_id), {"version": "1"}),
        (url("delete", memory_id=memory_id), {"reason": "test"}),
        (url("undelete", memory_id=memory_id), {}),
        (url("retry_dead_letter", letter_id=letter_id), {}),
        (url("erase", user_id="someone-else"), {"confirm": "someone-else"}),
    ]


@pytest.mark.parametrize("who", EVERYONE, ids=lambda w: w.name)
def test_mutations_permission_matrix(who: Who, memory: Any) -> None:
    letter_id = _dead_letter()
    _add("Someone else's memory", user_id="someone-else")
    client = _client_as(who)
    for action, data in _mutations(memory.id, letter_id):
        response = client.post(action, data)
        if not who.login:
            assert response.status_code == 302, action
            assert response["Location"].startswith("/accounts/login/?next="), action
        elif who.name in MAY_CHANGE:
            assert response.status_code in (200, 302), (action, response.status_code, _messages(response))
        else:
            assert response.status_code == 403, action
    after = get_memory(owner=ANYONE, memory_id=memory.id)
    history = memory_history(memory_id=memory.id)
    if who.name in MAY_CHANGE:
        # Every action ran in order: edited, pinned, locked, TTL set/extended/removed, v1 restored,
        # deleted, undeleted; the letter was retried and the other user erased.
        assert [e.event for e in history] == [
            "added",
            "updated",
            "pinned",
            "locked",
            "ttl_changed",
            "ttl_changed",
            "ttl_changed",
            "version_restored",
            "deleted",
            "restored",
        ]
        assert all(e.actor.kind == ActorKind.STAFF for e in history[1:])
        assert after.text == "User lives in Lisbon." and after.pinned and after.locked
        assert dead_letters.dead_letters() == []
        assert list_memories(filter=MemoryFilter.build(user_id="someone-else")).total == 0
    else:
        assert len(history) == 1 and after.version == 1 and not after.pinned
        assert len(dead_letters.dead_letters()) == 1
        assert list_memories(filter=MemoryFilter.build(user_id="someone-else")).total == 1


def test_dead_letter_discard_permission(client: Client, viewer: Any, editor: Any) -> None:
    letter_id = _dead_letter()
    client.force_login(viewer)
    assert client.post(url("discard_dead_letter", letter_id=letter_id)).status_code == 403
    assert len(dead_letters.dead_letters()) == 1
    client.force_login(editor)
    assert client.post(url("discard_dead_letter", letter_id=letter_id)).status_code == 302
    assert dead_letters.dead_letters() == []


def test_view_only_staff_see_no_edit_controls(as_viewer: Client, memory: Any) -> None:
    _dead_letter()
    page = as_viewer.get(url("memory", memory_id=memory.id)).content.decode()
    assert "User lives in Lisbon." in page
    assert "View access only" in page
    for control in ("Save new version", "Set TTL", ">Pin<", ">Lock<", ">Delete<", "Restore this version"):
        assert control not in page, control
    overview = as_viewer.get(url("inspector")).content.decode()
    assert "model exploded" in overview and ">Retry<" not in overview and ">Discard<" not in overview
    user_page = as_viewer.get(url("user", user_id=OWNER)).content.decode()
    assert "Erase user" not in user_page
    assert as_viewer.get(url("erase", user_id=OWNER)).status_code == 403


def test_editor_sees_the_controls(as_editor: Client, memory: Any) -> None:
    page = as_editor.get(url("memory", memory_id=memory.id)).content.decode()
    for control in ("Save new version", "Set TTL", ">Pin<", ">Lock<", ">Delete<"):
        assert control in page, control
    assert "View access only" not in page


def test_posts_need_a_csrf_token(editor: Any, memory: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(editor)
    for action, data in _mutations(memory.id, "1-0"):
        assert strict.post(action, data).status_code == 403, action
    assert get_memory(owner=ANYONE, memory_id=memory.id).version == 1
    # With the token the same client may act.
    page = strict.get(url("memory", memory_id=memory.id))
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
    assert token
    response = strict.post(
        url("pin", memory_id=memory.id), {"value": "1", "csrfmiddlewaretoken": token.group(1).decode()}
    )
    assert response.status_code == 302 and get_memory(owner=ANYONE, memory_id=memory.id).pinned


def test_mutations_refuse_get(as_editor: Client, memory: Any) -> None:
    assert as_editor.get(url("delete", memory_id=memory.id)).status_code == 405
    assert not get_memory(owner=ANYONE, memory_id=memory.id).deleted


def test_htmx_request_of_a_logged_out_user_redirects_the_whole_page(client: Client, memory: Any) -> None:
    response = client.post(url("pin", memory_id=memory.id), {"value": "1"}, headers=HX)
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/accounts/login/")


# --- Actions: effect on Redis and on history ------------------------------------------------------


def test_edit_changes_text_version_embedding_and_history(as_editor: Client, editor: Any, memory: Any) -> None:
    response = as_editor.post(
        url("edit", memory_id=memory.id),
        {
            "text": "User lives in Porto, near the river.",
            "type": "semantic",
            "topics": "home, Travel",
            "reason": "customer called to correct it",
            "expected_version": "1",
        },
    )
    assert response.status_code == 302 and response["Location"] == url("memory", memory_id=memory.id)
    after = get_memory(owner=ANYONE, memory_id=memory.id)
    assert after.text == "User lives in Porto, near the river."
    assert after.version == 2
    assert after.topics == ["home", "travel"]
    last = memory_history(memory_id=memory.id)[-1]
    assert last.event == "updated" and last.version == 2
    assert last.actor.kind == ActorKind.STAFF and last.actor.id == staff_id(editor)
    assert last.reason == "customer called to correct it"
    assert last.old_text == "User lives in Lisbon." and last.new_text == after.text
    # Re-embedded: a semantic search for the new wording finds it, with a high vector score.
    hits = search_memories(
        filter=MemoryFilter.build(user_id=OWNER), text="Porto near the river", mode="semantic", threshold=0
    ).hits
    assert hits[0].memory.id == memory.id and hits[0].score.vector > 0.6
    page = as_editor.get(url("memory", memory_id=memory.id)).content.decode()
    assert "<del>Lisbon.</del><ins>Porto, near the river.</ins>" in page or (
        "<del>Lisbon</del>" in page and "<ins>Porto, near the river</ins>" in page
    )
    assert staff_id(editor) in page and "customer called to correct it" in page


def test_an_edit_that_changes_nothing_makes_no_version(as_editor: Client, memory: Any) -> None:
    as_editor.post(
        url("edit", memory_id=memory.id),
        {"text": memory.text, "type": "semantic", "topics": "home", "expected_version": "1"},
    )
    assert get_memory(owner=ANYONE, memory_id=memory.id).version == 1
    assert len(memory_history(memory_id=memory.id)) == 1


def test_a_stale_edit_is_refused_and_keeps_the_typed_text(as_editor: Client, memory: Any) -> None:
    update_memory(owner=ANYONE, memory_id=memory.id, text="User lives in Madrid.", actor=EXTRACTOR)
    response = as_editor.post(
        url("edit", memory_id=memory.id),
        {"text": "User lives in Porto.", "type": "semantic", "topics": "home", "expected_version": "1"},
    )
    assert response.status_code == 409
    body = response.content.decode()
    assert "changed while you were editing" in body and "version 2" in body
    assert "User lives in Porto.</textarea>" in body
    assert 'name="expected_version" value="2"' in body
    assert get_memory(owner=ANYONE, memory_id=memory.id).text == "User lives in Madrid."
    # htmx gets the same refusal inside the swapped panel (htmx does not swap 4xx answers).
    partial = as_editor.post(
        url("edit", memory_id=memory.id),
        {"text": "User lives in Porto.", "type": "semantic", "expected_version": "1"},
        headers=HX,
    )
    assert partial.status_code == 200 and b"changed while you were editing" in partial.content
    assert b"<html" not in partial.content


def test_invalid_edit_shows_the_reason(as_editor: Client, memory: Any) -> None:
    response = as_editor.post(
        url("edit", memory_id=memory.id), {"text": "   ", "type": "semantic", "expected_version": "1"}
    )
    assert response.status_code == 400 and b"This field is required" in response.content
    response = as_editor.post(
        url("edit", memory_id=memory.id), {"text": "x", "type": "bogus", "expected_version": "1"}
    )
    assert response.status_code == 400 and b"not one of the available choices" in response.content
    assert get_memory(owner=ANYONE, memory_id=memory.id).version == 1


def test_delete_then_undo(as_editor: Client, editor: Any, memory: Any) -> None:
    response = as_editor.post(url("delete", memory_id=memory.id), {"reason": "wrong person"}, follow=True)
    assert any("Deleted" in m for m in _messages(response))
    assert get_memory(owner=ANYONE, memory_id=memory.id).deleted
    with pytest.raises(MemoryNotFound):
        memory_ttl(owner=ANYONE, memory_id=memory.id)
    assert [m.id for m in deleted_memories(user_id=OWNER)] == [memory.id]
    deleted = memory_history(memory_id=memory.id)[-1]
    assert (
        deleted.event == "deleted"
        and deleted.reason == "wrong person"
        and deleted.actor.id == staff_id(editor)
    )
    page = response.content.decode()
    assert "Undo delete" in page and "can be restored for" in page
    user_page = as_editor.get(url("user", user_id=OWNER)).content.decode()
    assert "Recently deleted" in user_page and url("undelete", memory_id=memory.id) in user_page

    # Undo from the user page (plain POST: back to the page it came from).
    response = as_editor.post(
        url("undelete", memory_id=memory.id), {"panel": "deleted", "next": url("user", user_id=OWNER)}
    )
    assert response.status_code == 302 and response["Location"] == url("user", user_id=OWNER)
    restored = get_memory(owner=ANYONE, memory_id=memory.id)
    assert not restored.deleted and restored.text == "User lives in Lisbon."
    assert deleted_memories(user_id=OWNER) == []
    assert memory_history(memory_id=memory.id)[-1].event == "restored"
    assert memory_history(memory_id=memory.id)[-1].actor.id == staff_id(editor)


def test_undo_from_the_user_page_with_htmx_returns_the_deleted_panel(as_editor: Client, memory: Any) -> None:
    delete_memory(owner=ANYONE, memory_id=memory.id, actor=USER)
    response = as_editor.post(url("undelete", memory_id=memory.id), {"panel": "deleted"}, headers=HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert (
        'id="deleted-panel"' in body and "Nothing deleted in the grace period" in body and "<html" not in body
    )
    assert "memories-changed" in json.loads(response["HX-Trigger"])
    assert not get_memory(owner=ANYONE, memory_id=memory.id).deleted


def test_a_deleted_memory_cannot_be_edited_until_undone(as_editor: Client, memory: Any) -> None:
    delete_memory(owner=ANYONE, memory_id=memory.id, actor=USER)
    response = as_editor.post(url("pin", memory_id=memory.id), {"value": "1"})
    assert response.status_code == 409 and b"undo the delete first" in response.content


def test_restore_an_earlier_version(as_editor: Client, editor: Any, memory: Any) -> None:
    update_memory(owner=ANYONE, memory_id=memory.id, text="User lives in Porto.", actor=EXTRACTOR)
    page = as_editor.get(url("memory", memory_id=memory.id)).content.decode()
    assert page.count("Restore this version") == 1  # v1 only; v2 is the current text
    response = as_editor.post(
        url("restore_version", memory_id=memory.id), {"version": "1", "expected_version": "2"}
    )
    assert response.status_code == 302
    after = get_memory(owner=ANYONE, memory_id=memory.id)
    assert after.text == "User lives in Lisbon." and after.version == 3
    last = memory_history(memory_id=memory.id)[-1]
    assert last.event == "version_restored" and last.details["from_version"] == 1
    assert last.actor.id == staff_id(editor)
    # A stale restore (someone changed it since the page was read) is refused.
    response = as_editor.post(
        url("restore_version", memory_id=memory.id), {"version": "2", "expected_version": "2"}
    )
    assert response.status_code == 409
    assert get_memory(owner=ANYONE, memory_id=memory.id).version == 3


def test_ttl_set_extend_and_persist(as_editor: Client, editor: Any, memory: Any) -> None:
    assert memory_ttl(owner=ANYONE, memory_id=memory.id) is None
    as_editor.post(
        url("set_ttl", memory_id=memory.id), {"amount": "2", "unit": "hours", "reason": "short-lived"}
    )
    ttl = memory_ttl(owner=ANYONE, memory_id=memory.id)
    assert ttl is not None and 7190 <= ttl <= 7200
    event = memory_history(memory_id=memory.id)[-1]
    assert event.event == "ttl_changed" and event.details["ttl_seconds"] == 7200
    assert event.actor.id == staff_id(editor) and event.reason == "short-lived"
    page = as_editor.get(url("memory", memory_id=memory.id)).content.decode()
    assert re.search(r'data-ttl-seconds="(71\d\d|7200)"', page)
    assert "expires in 1 h 59 min" in page or "expires in 2 h" in page

    as_editor.post(url("extend_ttl", memory_id=memory.id), {"amount": "1", "unit": "days"})
    ttl = memory_ttl(owner=ANYONE, memory_id=memory.id)
    assert ttl is not None and 7190 + 86400 <= ttl <= 7200 + 86400

    as_editor.post(url("persist", memory_id=memory.id), {"reason": "keep"})
    assert memory_ttl(owner=ANYONE, memory_id=memory.id) is None
    assert memory_history(memory_id=memory.id)[-1].details["ttl_seconds"] is None
    assert "never expires" in as_editor.get(url("memory", memory_id=memory.id)).content.decode()


def test_invalid_ttls_are_refused_with_a_message(as_editor: Client, memory: Any) -> None:
    for data in (
        {"amount": "0", "unit": "hours"},
        {"amount": "2", "unit": "weeks"},
        {"amount": "4000", "unit": "days"},
    ):
        response = as_editor.post(url("set_ttl", memory_id=memory.id), data)
        assert response.status_code == 400, data
    response = as_editor.post(url("extend_ttl", memory_id=memory.id), {"amount": "1", "unit": "hours"})
    assert response.status_code == 400 and b"does not expire" in response.content
    assert memory_ttl(owner=ANYONE, memory_id=memory.id) is None


def test_pin_and_unpin(as_editor: Client, editor: Any, memory: Any) -> None:
    as_editor.post(url("pin", memory_id=memory.id), {"value": "1", "reason": "always relevant"})
    assert get_memory(owner=ANYONE, memory_id=memory.id).pinned
    event = memory_history(memory_id=memory.id)[-1]
    assert (event.event, event.actor.id, event.reason) == ("pinned", staff_id(editor), "always relevant")
    as_editor.post(url("pin", memory_id=memory.id), {"value": "0"})
    assert not get_memory(owner=ANYONE, memory_id=memory.id).pinned


def test_lock_stops_the_extractor(as_editor: Client, editor: Any, memory: Any) -> None:
    as_editor.post(url("lock", memory_id=memory.id), {"value": "1"})
    assert get_memory(owner=ANYONE, memory_id=memory.id).locked
    event = memory_history(memory_id=memory.id)[-1]
    assert (
        event.event == "locked"
        and event.actor.id == staff_id(editor)
        and event.reason == "corrected by support"
    )
    with pytest.raises(MemoryLocked):
        update_memory(owner=ANYONE, memory_id=memory.id, text="User lives in Faro.", actor=EXTRACTOR)
    with pytest.raises(MemoryLocked):
        delete_memory(owner=ANYONE, memory_id=memory.id, actor=EXTRACTOR)
    assert get_memory(owner=ANYONE, memory_id=memory.id).text == "User lives in Lisbon."
    as_editor.post(url("lock", memory_id=memory.id), {"value": "0"})
    update_memory(owner=ANYONE, memory_id=memory.id, text="User lives in Faro.", actor=EXTRACTOR)


def test_unknown_memories_and_sessions_are_404(as_viewer: Client, as_editor: Client) -> None:
    assert as_viewer.get(url("memory", memory_id="01NOPE")).status_code == 404
    assert as_viewer.get(url("session", session_id="nope")).status_code == 404
    assert as_editor.post(url("pin", memory_id="01NOPE"), {"value": "1"}).status_code == 404
    assert as_editor.post(url("retry_dead_letter", letter_id="not-an-id")).status_code == 404


def test_dead_letter_retry_and_discard(as_editor: Client) -> None:
    letter_id = _dead_letter()
    overview = as_editor.get(url("inspector")).content.decode()
    assert "model exploded" in overview and url("retry_dead_letter", letter_id=letter_id) in overview
    before = queue.queue_health()["stream_length"]
    response = as_editor.post(url("retry_dead_letter", letter_id=letter_id), follow=True)
    assert any("Queued 1 turn" in m for m in _messages(response))
    assert dead_letters.dead_letters() == []
    assert queue.queue_health()["stream_length"] == before + 1
    assert len(queue.pending_turns("s-dead", after=queue.cursor("s-dead"))) == 1
    # Retrying again: it is gone, with a message, not a 500.
    assert as_editor.post(url("retry_dead_letter", letter_id=letter_id)).status_code == 404

    second = _dead_letter(session_id="s-dead-2")
    response = as_editor.post(url("discard_dead_letter", letter_id=second), headers=HX)
    assert (
        response.status_code == 200 and b'id="queue"' in response.content and b"<html" not in response.content
    )
    assert b"Discarded" in response.content
    assert dead_letters.dead_letters() == []


def test_export_is_a_json_download_of_everything(as_viewer: Client, viewer: Any, memory: Any) -> None:
    update_memory(owner=ANYONE, memory_id=memory.id, text="User lives in Porto.", actor=EXTRACTOR)
    gone = _add("User once liked jazz")
    delete_memory(owner=ANYONE, memory_id=gone.id, actor=USER)
    working.ensure_session(session_id="s1", user_id=OWNER, title="Moving")
    working.append_message(session_id="s1", role="user", content="Where do I live?")
    build_prompt(user_id=OWNER, session_id="s1", message="Where do I live?", turn_id="t1")
    _add("Not theirs", user_id="user-2")

    response = as_viewer.get(url("export", user_id=OWNER))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="engram-user-user-1.json"'
    data = json.loads(response.content)
    assert data["user_id"] == OWNER and data["exported_by"] == staff_id(viewer)
    assert [m["text"] for m in data["memories"]] == ["User lives in Porto."]
    assert [e["event"] for e in data["memories"][0]["history"]] == ["added", "updated"]
    assert [m["text"] for m in data["deleted_memories"]] == ["User once liked jazz"]
    assert [e["event"] for e in data["deleted_memories"][0]["history"]] == ["added", "deleted"]
    [session] = data["sessions"]
    assert session["id"] == "s1" and session["title"] == "Moving"
    assert [m["content"] for m in session["messages"]] == ["Where do I live?"]
    assert [t["turn_id"] for t in session["traces"]] == ["t1"]
    assert session["traces"][0]["query"] == "Where do I live?"
    assert "Not theirs" not in response.content.decode()


def test_erase_asks_for_confirmation_then_shows_the_receipt(
    as_editor: Client, editor: Any, redis_client: Any
) -> None:
    kept = [_add("User likes tea"), _add("User walks to work", type="episodic")]
    trashed = _add("User had a cat")
    delete_memory(owner=ANYONE, memory_id=trashed.id, actor=USER)
    working.ensure_session(session_id="s1", user_id=OWNER)
    working.append_message(session_id="s1", role="user", content="hello")
    build_prompt(user_id=OWNER, session_id="s1", message="tea?", turn_id="t1")
    other = _add("Another user's memory", user_id="user-2")

    confirm = as_editor.get(url("erase", user_id=OWNER))
    assert (
        confirm.status_code == 200
        and b"2 live memories" in confirm.content
        and b"1 session" in confirm.content
    )
    wrong = as_editor.post(url("erase", user_id=OWNER), {"confirm": "user-2"})
    assert wrong.status_code == 400 and b"nothing was erased" in wrong.content
    assert list_memories(filter=MemoryFilter.build(user_id=OWNER)).total == 2

    response = as_editor.post(url("erase", user_id=OWNER), {"confirm": OWNER})
    assert response.status_code == 302 and response["Location"].startswith("/inspector/receipts/")
    receipt_page = as_editor.get(response["Location"])
    assert receipt_page.status_code == 200
    receipt = receipt_page.context["receipt"]
    assert sorted(receipt["memory_ids"]) == sorted(m.id for m in kept)
    assert receipt["deleted_memory_ids"] == [trashed.id]
    assert receipt["session_ids"] == ["s1"]
    assert receipt["counts"]["memories"] == 2 and receipt["counts"]["deleted_memories"] == 1
    assert receipt["counts"]["sessions"] == 1 and receipt["counts"]["traces"] == 1
    assert receipt["erased_by"] == staff_id(editor)
    body = receipt_page.content.decode()
    assert receipt["receipt_id"] in body and kept[0].id in body and "deleted memories" in body

    # The audit stream keeps that the erase happened, by whom, with counts (never what was erased).
    [(_, fields)] = redis_client.xrevrange(keys.mutation_stream(), count=1)
    audit = json.loads(fields[b"data"])
    assert audit["event"] == "user_erased" and audit["actor"]["id"] == staff_id(editor)
    assert audit["details"]["counts"] == receipt["counts"]

    # Everything of user-1 is gone; user-2 is untouched.
    assert list_memories(filter=MemoryFilter.build(user_id=OWNER)).total == 0
    assert deleted_memories(user_id=OWNER) == []
    assert working.get_session(session_id="s1") is None
    assert memory_history(memory_id=kept[0].id) == []
    assert get_memory(owner=ANYONE, memory_id=other.id).text == "Another user's memory"
    lookup = as_editor.get(url("user_lookup") + f"?user_id={OWNER}")
    assert lookup.status_code == 404 and b"nothing stored under this exact id" in lookup.content
    # The receipt belongs to the browser session that erased.
    assert Client().get(response["Location"]).status_code == 302


# --- Pages ----------------------------------------------------------------------------------------


def test_overview_shows_totals_users_queue_and_feed(as_viewer: Client, memory: Any) -> None:
    _add("User walks to work", type="episodic")
    _add("Bob likes tea", user_id="user-2")
    working.ensure_session(session_id="s1", user_id=OWNER)
    body = as_viewer.get(url("inspector")).content.decode()
    assert re.search(r'<span class="stat-value">2</span><span class="stat-label">users</span>', body)
    assert re.search(r'<span class="stat-value">3</span><span class="stat-label">memories</span>', body)
    assert re.search(r'<span class="stat-value">1</span><span class="stat-label">episodic</span>', body)
    assert url("user", user_id=OWNER) in body and url("user", user_id="user-2") in body
    assert "Extraction queue" in body and "Live changes" in body
    assert 'data-feed-path="/ws/inspector/feed/"' in body
    assert "Bob likes tea" in body  # the feed panel starts with the latest changes


def test_overview_users_are_paged(as_viewer: Client) -> None:
    for i in range(30):
        working.ensure_session(session_id=f"s{i}", user_id=f"user-{i:02d}")
    first = as_viewer.get(url("inspector")).content.decode()
    assert first.count('<th scope="row" data-label="User id">') == 25 and "Older →" in first
    second = as_viewer.get(url("inspector") + "?page=2", headers=HX)
    assert second.status_code == 200 and b"<html" not in second.content
    assert second.content.decode().count('<th scope="row" data-label="User id">') == 5


def test_user_lookup_goes_to_the_user_page(as_viewer: Client, memory: Any) -> None:
    response = as_viewer.get(url("user_lookup"), {"user_id": OWNER})
    assert response.status_code == 302 and response["Location"] == url("user", user_id=OWNER)
    assert as_viewer.get(url("user_lookup"), {"user_id": ""}).status_code == 400


def test_user_page_lists_memories_sessions_and_counts(as_viewer: Client, memory: Any) -> None:
    _add("User walks to work", type="episodic", ttl_seconds=3 * 3600 + 12 * 60 + 30)
    working.ensure_session(session_id="s1", user_id=OWNER, title="Moving chat")
    _add("Bob likes tea", user_id="user-2")
    response = as_viewer.get(url("user", user_id=OWNER))
    body = response.content.decode()
    assert "User lives in Lisbon." in body and "User walks to work" in body and "Bob likes tea" not in body
    assert "expires in 3 h 12 min" in body  # the no-JavaScript countdown text
    assert "Moving chat" in body and url("session", session_id="s1") in body
    assert "#home" in body and "1\u20132 of 2" in body


def test_user_page_is_paged(as_viewer: Client) -> None:
    from memory.services import NewMemory, add_memories

    add_memories(
        items=[NewMemory(text=f"Fact number {i}", scope=Scope(user_id=OWNER)) for i in range(55)], actor=USER
    )
    first = as_viewer.get(url("user", user_id=OWNER)).content.decode()
    assert "1\u201350 of 55" in first and "page 1 of 2" in first
    second = as_viewer.get(url("user", user_id=OWNER) + "?page=2").content.decode()
    assert "51\u201355 of 55" in second and "← Previous" in second


def test_search_shows_each_hits_score_breakdown(as_viewer: Client, memory: Any) -> None:
    _add("User is allergic to peanuts", topics=["health"])
    for mode in ("hybrid", "semantic", "keyword"):
        response = as_viewer.get(url("user", user_id=OWNER), {"q": "peanuts allergy", "mode": mode})
        assert response.status_code == 200, mode
        body = response.content.decode()
        assert "User is allergic to peanuts" in body, mode
        for label in ("vector", "keyword", "bm25 raw", "recency", "final"):
            assert f"<dt>{label}</dt>" in body, (mode, label)
    hit = (
        as_viewer.get(url("user", user_id=OWNER), {"q": "peanuts", "mode": "hybrid"})
        .context["search"]
        .hits[0]
    )
    assert hit.memory.text == "User is allergic to peanuts"
    assert hit.score.bm25_raw > 0 and hit.score.keyword > 0 and hit.score.vector > 0
    filtered = as_viewer.get(
        url("user", user_id=OWNER), {"q": "where", "type": "episodic", "topic": "health"}
    )
    assert "Nothing matched" in filtered.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"type": "bogus"}, "Select a valid choice"),
        ({"mode": "telepathy", "q": "x"}, "Select a valid choice"),
        ({"topic": "bad\x01topic"}, "control characters"),
        ({"topic": "x" * 65}, "at most 64 characters"),
        ({"page": "abc"}, "Enter a whole number"),
        ({"page": "3000"}, "offset must be"),
        ({"q": "x" * 2001}, "at most 2000 characters"),
        ({"sort": "text"}, "Select a valid choice"),
    ],
)
def test_invalid_filters_show_a_message(
    as_viewer: Client, memory: Any, params: dict[str, str], message: str
) -> None:
    response = as_viewer.get(url("user", user_id=OWNER), params)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "Cannot show these results" in response.content.decode()
    partial = as_viewer.get(url("user", user_id=OWNER), params, headers=HX)
    assert partial.status_code == 200 and message in partial.content.decode()


def test_session_page_shows_working_memory_and_traces(as_viewer: Client, memory: Any, settings: Any) -> None:
    settings.RETRIEVAL_THRESHOLD = 0.35  # the bicycle memory must fall below it: a near miss
    working.ensure_session(session_id="s1", user_id=OWNER, title="Moving chat")
    working.append_message(session_id="s1", role="user", content="Where do I live now?")
    working.append_message(session_id="s1", role="assistant", content="In Lisbon.")
    working.set_summary(session_id="s1", summary="The user talked about moving.")
    _add("User owns a red bicycle")
    build_prompt(user_id=OWNER, session_id="s1", message="Does the user live in Lisbon?", turn_id="t1")
    body = as_viewer.get(url("session", session_id="s1")).content.decode()
    assert "Moving chat" in body and "Where do I live now?" in body and "In Lisbon." in body
    assert "The user talked about moving." in body
    assert 'max="4000"' in body  # WORKING_MEMORY_TOKEN_LIMIT
    assert "prompt budget 3000" in body
    assert "exact" in body or "estimated" in body
    assert "Injected memories (1)" in body and "User lives in Lisbon." in body
    assert "Near misses" in body and "floor 0.35" in body
    assert "Included because: score" in body, "the trace says which rule admitted each memory"
    for label in ("System instructions", "Memories", "Summary", "Recent messages", "User message"):
        assert label in body
    assert "<dt>bm25 raw</dt>" in body


def test_sandbox_shows_retrieval_and_saves_nothing(as_viewer: Client, redis_client: Any, memory: Any) -> None:
    working.ensure_session(session_id="s1", user_id=OWNER)
    working.append_message(session_id="s1", role="user", content="I just moved house.")
    before_keys = {k: redis_client.type(k) for k in redis_client.keys("*")}
    before_access = get_memory(owner=ANYONE, memory_id=memory.id).access_count
    before_history = len(memory_history(memory_id=memory.id))
    before_stream = redis_client.xlen(keys.mutation_stream())

    page = as_viewer.get(url("sandbox", user_id=OWNER))
    assert page.status_code == 200 and b"Run retrieval" in page.content
    response = as_viewer.post(
        url("sandbox", user_id=OWNER), {"message": "Does the user live in Lisbon?", "session_id": "s1"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Injected memories (1)" in body and "User lives in Lisbon." in body
    assert "<dt>final</dt>" in body and "Assembled messages" in body
    assert "I just moved house." in body  # the session's recent message is in the assembled prompt
    fresh = as_viewer.post(url("sandbox", user_id=OWNER), {"message": "Where do I live?"})
    assert fresh.status_code == 200 and b"fresh session" in fresh.content

    after_keys = {k: redis_client.type(k) for k in redis_client.keys("*")}
    assert after_keys == before_keys
    assert working.list_traces(session_id="s1") == []
    assert get_memory(owner=ANYONE, memory_id=memory.id).access_count == before_access
    assert len(memory_history(memory_id=memory.id)) == before_history
    assert redis_client.xlen(keys.mutation_stream()) == before_stream


def test_sandbox_refuses_another_users_session(as_viewer: Client, memory: Any) -> None:
    working.ensure_session(session_id="theirs", user_id="user-2")
    working.append_message(session_id="theirs", role="user", content="Bob's private message")
    response = as_viewer.post(url("sandbox", user_id=OWNER), {"message": "hi", "session_id": "theirs"})
    assert response.status_code == 400
    assert b"no live session with that id" in response.content
    assert (
        b"Bob&#x27;s private message" not in response.content
        and b"Bob's private message" not in response.content
    )
    assert as_viewer.post(url("sandbox", user_id=OWNER), {"message": ""}).status_code == 400


# --- Escaping -------------------------------------------------------------------------------------


def test_memory_text_is_escaped_everywhere(as_editor: Client) -> None:
    hostile = _add(XSS, topics=["<b>x</b>"])
    update_memory(
        owner=ANYONE, memory_id=hostile.id, text=XSS + " <img src=x onerror=alert(2)>", actor=EXTRACTOR
    )
    working.ensure_session(session_id="s1", user_id=OWNER, title="<i>title</i>")
    working.append_message(session_id="s1", role="user", content=XSS)
    build_prompt(user_id=OWNER, session_id="s1", message="alert script", turn_id="t1")
    pages = [
        as_editor.get(url("inspector")),
        as_editor.get(url("user", user_id=OWNER)),
        as_editor.get(url("user", user_id=OWNER), {"q": "alert script"}),
        as_editor.get(url("memory", memory_id=hostile.id)),
        as_editor.get(url("session", session_id="s1")),
        as_editor.post(url("sandbox", user_id=OWNER), {"message": XSS, "session_id": "s1"}),
        as_editor.post(url("pin", memory_id=hostile.id), {"value": "1"}, headers=HX),
    ]
    for response in pages:
        body = response.content.decode()
        assert response.status_code == 200, response.request["PATH_INFO"]
        assert "<script>alert" not in body, response.request["PATH_INFO"]
        assert "<img src=x" not in body and "<b>x</b>" not in body and "<i>title</i>" not in body
        assert XSS_ESCAPED in body, response.request["PATH_INFO"]
    event = memory_history(memory_id=hostile.id)[-1].as_dict()
    event["new"] = {"text": XSS}
    fragment = render_feed_entry(event)
    assert "<script>" not in fragment and XSS_ESCAPED in fragment


def test_feed_entry_tolerates_odd_events() -> None:
    assert "User erased" in render_feed_entry(
        {
            "event": "user_erased",
            "user_id": "<u>",
            "actor": {"kind": "staff", "id": "s"},
            "details": {"counts": {"memories": 2}},
        }
    )
    assert render_feed_entry({})  # renders something, never raises


# --- Hostile user ids -----------------------------------------------------------------------------

HOSTILE_IDS = ["anon-ab12", "a|b c", "a/b", "..", "*", "~x", "a", "b", "-x", "x}", "user-1 OR 1", "é ü"]


def test_converter_round_trips_every_id() -> None:
    for user_id in [*HOSTILE_IDS, "user-7", "anon-3fa2", "a" * 200, ".hidden", "%2F"]:
        encoded = encode_key(user_id)
        assert "/" not in encoded and encoded not in {".", ".."}
        assert decode_key(encoded) == user_id
    assert encode_key("anon-ab12") == "anon-ab12"  # plain ids stay readable
    with pytest.raises(ValueError):
        decode_key("~%%%")


def test_hostile_user_ids_get_their_own_pages_and_nothing_else(as_editor: Client) -> None:
    for user_id in HOSTILE_IDS:
        _add(f"secret of [{user_id}]", user_id=user_id)
        working.ensure_session(session_id=f"session of {user_id}", user_id=user_id)
    for user_id in HOSTILE_IDS:
        response = as_editor.get(url("user", user_id=user_id))
        assert response.status_code == 200, user_id
        body = response.content.decode()
        shown = re.findall(r"secret of \[(.*?)\]", body)
        assert {s.replace("&#x27;", "'").replace("&amp;", "&") for s in shown} <= {user_id}, (user_id, shown)
        assert shown, user_id
        export = json.loads(as_editor.get(url("export", user_id=user_id)).content)
        assert [m["text"] for m in export["memories"]] == [f"secret of [{user_id}]"], user_id
        assert [s["id"] for s in export["sessions"]] == [f"session of {user_id}"]
        search = as_editor.get(url("user", user_id=user_id), {"q": "secret", "mode": "keyword"}, headers=HX)
        assert re.findall(r"secret of \[(.*?)\]", search.content.decode()) == [
            user_id.replace("&", "&amp;")
        ], user_id
    # The raw, percent-encoded form of an id works too.
    assert "secret of [a|b c]" in as_editor.get("/inspector/users/a%7Cb%20c/").content.decode()
    # Sessions with odd ids have pages as well.
    assert as_editor.get(url("session", session_id="session of a/b")).status_code == 200


def test_a_bad_encoded_id_is_404_not_500(as_viewer: Client) -> None:
    assert as_viewer.get("/inspector/users/~%25%25%25/").status_code == 404
    assert as_viewer.get("/inspector/users/" + "x" * 250 + "/").status_code == 404


def test_hostile_ids_in_the_lookup_box(as_viewer: Client) -> None:
    _add("pipe secret", user_id="a|b c")
    response = as_viewer.get(url("user_lookup"), {"user_id": "a|b c"})
    assert response.status_code == 302
    assert "pipe secret" in as_viewer.get(response["Location"]).content.decode()
    assert as_viewer.get(url("user_lookup"), {"user_id": "a|b"}).status_code == 404


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("alice,mallory", "may not contain a comma"),
        ("bob,", "may not contain a comma"),
        ("a\tb", "contains control characters"),
    ],
)
def test_ids_no_user_can_have_are_a_clear_400_in_the_lookup_box(
    as_viewer: Client, typed: str, message: str
) -> None:
    _add("alice's secret", user_id="alice")
    _add("bob's secret", user_id="bob")
    response = as_viewer.get(url("user_lookup"), {"user_id": typed})
    assert response.status_code == 400
    assert f"A user id {message}" in response.content.decode()
    # A pasted id with a space around it is the id itself (no user id starts or ends with one).
    for pasted in ("bob ", "\u00a0bob"):
        assert as_viewer.get(url("user_lookup"), {"user_id": pasted})["Location"] == url(
            "user", user_id="bob"
        )


def test_user_pages_of_ids_no_user_can_have_are_404(as_editor: Client) -> None:
    _add("alice's secret", user_id="alice")
    for user_id in ("alice,mallory", "alice ", " alice"):
        for name in ("user", "export", "erase", "sandbox"):
            response = as_editor.get(url(name, user_id=user_id))
            assert response.status_code == 404, (user_id, name)
            assert b"alice's secret" not in response.content


# --- htmx fragments vs full pages -----------------------------------------------------------------


def test_htmx_requests_get_fragments_and_plain_requests_full_pages(as_editor: Client, memory: Any) -> None:
    cases = [
        (url("user", user_id=OWNER), 'id="memory-results"'),
        (url("user", user_id=OWNER) + "?q=Lisbon", 'id="memory-results"'),
        (url("memory", memory_id=memory.id), 'id="memory-panel"'),
        (url("inspector"), 'id="users-panel"'),
    ]
    for path, marker in cases:
        full = as_editor.get(path).content.decode()
        partial = as_editor.get(path, headers=HX).content.decode()
        assert "<html" in full and marker in full, path
        assert "<html" not in partial and marker in partial, path
    # htmx restoring a page from history needs the whole page.
    restored = as_editor.get(url("user", user_id=OWNER), headers={**HX, "HX-History-Restore-Request": "true"})
    assert b"<html" in restored.content

    plain = as_editor.post(url("pin", memory_id=memory.id), {"value": "1"})
    assert plain.status_code == 302
    fragment = as_editor.post(url("pin", memory_id=memory.id), {"value": "0"}, headers=HX)
    assert fragment.status_code == 200
    body = fragment.content.decode()
    assert "<html" not in body and 'id="memory-panel"' in body and "Unpinned." in body
    sandbox = as_editor.post(url("sandbox", user_id=OWNER), {"message": "Lisbon?"}, headers=HX)
    assert b"<html" not in sandbox.content and b'id="sandbox"' in sandbox.content


# --- Helpers --------------------------------------------------------------------------------------


def test_word_diff() -> None:
    segments = word_diff("User lives in Lisbon.", "User lives in Porto.")
    assert segments == [
        ("equal", "User lives in "),
        ("delete", "Lisbon"),
        ("insert", "Porto"),
        ("equal", "."),
    ]
    assert word_diff("a big dog barks", "a small cat barks") == [
        ("equal", "a "),
        ("delete", "big dog"),
        ("insert", "small cat"),
        ("equal", " barks"),
    ]
    for old, new in [
        ("", "x y"),
        ("x y", ""),
        ("<b>x</b>", "<i>x</i>"),
        ("same", "same"),
        ("a  b\nc", "a b c"),
    ]:
        diff = word_diff(old, new)
        assert reconstruct(diff, side="old") == old and reconstruct(diff, side="new") == new


def test_duration_text() -> None:
    assert duration_text(3 * 3600 + 12 * 60 + 5) == "3 h 12 min"
    assert duration_text(2 * 86400 + 4 * 3600) == "2 d 4 h"
    assert duration_text(86400 + 30) == "1 d"
    assert duration_text(45) == "45 s"
    assert duration_text(None) == "never"
    assert duration_text(0) == "0 s"


def test_ttl_expiry_in_redis_matches_the_page(as_viewer: Client, memory: Any) -> None:
    set_ttl(owner=ANYONE, memory_id=memory.id, ttl_seconds=90, actor=USER)
    body = as_viewer.get(url("memory", memory_id=memory.id)).content.decode()
    assert re.search(r'data-ttl-seconds="(89|90)"', body)
    assert "expires in 1 min 30 s" in body or "expires in 1 min 29 s" in body


def test_a_fact_links_to_the_turn_it_came_from_and_raw_turns_filter_by_type(as_viewer: Client) -> None:
    said = _add(
        "I moved to Lisbon last spring, loving it", type="message", topics=["said-by:user"], source=["t-9"]
    )
    fact = _add("User lives in Lisbon", topics=["location"], source=["t-9"])
    body = as_viewer.get(url("memory", memory_id=fact.id)).content.decode()
    assert "learned from turn t-9" in body and "I moved to Lisbon last spring, loving it" in body
    assert url("memory", memory_id=said.id) in body
    back = as_viewer.get(url("memory", memory_id=said.id)).content.decode()
    assert "learned: " in back and url("memory", memory_id=fact.id) in back
    only_turns = as_viewer.get(url("user", user_id=OWNER), {"type": "message"}, headers=HX).content.decode()
    assert "I moved to Lisbon last spring" in only_turns and "User lives in Lisbon" not in only_turns
