"""Chat pages over HTTP: sessions, ownership, the user's own memories, sign-up and the anonymous move."""

import pytest
from django.test import Client

from chat.identity import ANON_SESSION_KEY, account_memory_id, anonymous_memory_id
from memory import working
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.selectors import get_memory, list_memories
from memory.services import add_memory
from memory.types import Scope
from tests.chat_helpers import make_user
from tests.memory_helpers import USER

pytestmark = pytest.mark.django_db


def _anon_user(client: Client) -> str:
    """The visitor's memory id, giving them one as starting a chat does."""
    session = client.session
    session.setdefault(ANON_SESSION_KEY, "visitor-1")
    session.save()
    return anonymous_memory_id(client.session[ANON_SESSION_KEY])


def test_anonymous_visitor_gets_a_session_list_and_can_start_a_chat(client: Client):
    response = client.get("/chat/")
    assert response.status_code == 200
    assert b"chatting anonymously" in response.content
    response = client.post("/chat/new")
    assert response.status_code == 302
    location = response["Location"]
    session_id = location.rstrip("/").split("/")[-1]
    assert working.get_session(session_id=session_id).user_id == _anon_user(client)  # type: ignore[union-attr]
    page = client.get(location)
    assert page.status_code == 200
    assert f'data-ws-path="/ws/chat/{session_id}/"'.encode() in page.content


def test_chats_of_others_are_404(client: Client):
    _, bob = make_user("bob")
    working.ensure_session(session_id="bobs-chat", user_id=bob)
    for url in ("/chat/bobs-chat/", "/chat/bobs-chat/messages"):
        assert client.get(url).status_code == 404
    assert client.post("/chat/bobs-chat/delete").status_code == 404
    assert working.get_session(session_id="bobs-chat") is not None


def test_rename_and_delete_own_chat(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    working.ensure_session(session_id="mine", user_id=memory_user, title="Old")
    client.post("/chat/mine/rename", {"title": "Trip planning"})
    assert working.get_session(session_id="mine").title == "Trip planning"  # type: ignore[union-attr]
    assert b"Trip planning" in client.get("/chat/").content
    client.post("/chat/mine/delete")
    assert working.get_session(session_id="mine") is None


def test_history_is_rendered_escaped(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    working.ensure_session(session_id="mine", user_id=memory_user)
    working.append_message(session_id="mine", role="user", content="<script>alert('x')</script>")
    working.append_message(
        session_id="mine",
        role="assistant",
        content="ok",
        meta={
            "memories": [
                {
                    "id": "m1",
                    "text": "<img src=x onerror=alert(1)>",
                    "type": "semantic",
                    "reason": "match",
                    "scores": {"final": 0.5, "vector": 0.5, "keyword": 0, "recency": 1},
                    "link": "/x",
                }
            ]
        },
    )
    for url in ("/chat/mine/", "/chat/mine/messages"):
        body = client.get(url).content.decode()
        assert "<script>alert" not in body and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body
        assert "<img src=x" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body


def test_users_see_and_forget_only_their_own_memories(client: Client):
    user, memory_user = make_user("alice")
    _, bob = make_user("bob")
    mine = add_memory(text="Alice likes <b>bold</b> coffee", scope=Scope(user_id=memory_user), actor=USER)
    bobs = add_memory(text="Bob likes tea", scope=Scope(user_id=bob), actor=USER)
    client.force_login(user)
    body = client.get("/chat/me/memories/").content.decode()
    assert "Alice likes &lt;b&gt;bold&lt;/b&gt; coffee" in body
    assert "Bob likes tea" not in body
    client.post(f"/chat/me/memories/{bobs.id}/forget")
    assert not get_memory(memory_id=bobs.id).deleted
    client.post(f"/chat/me/memories/{mine.id}/forget")
    assert get_memory(memory_id=mine.id).deleted


def test_posts_need_csrf(client: Client):
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/chat/new").status_code == 403


def test_logging_in_moves_anonymous_memories_and_chats(client: Client):
    user, memory_user = make_user("alice")
    anon = _anon_user(client)
    working.ensure_session(session_id="anon-chat", user_id=anon)
    add_memory(text="Visitor loves sushi", scope=Scope(user_id=anon), actor=USER)
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-12345"})
    assert response.status_code == 302
    hits = search_memories(filter=MemoryFilter.build(user_id=memory_user), text="sushi", threshold=0).hits
    assert [h.memory.text for h in hits] == ["Visitor loves sushi"]
    assert list_memories(filter=MemoryFilter.build(user_id=anon)).total == 0
    assert working.session_ids_for_user(user_id=memory_user) == ["anon-chat"]
    assert client.get("/chat/anon-chat/").status_code == 200
    assert memory_user == account_memory_id(user.pk)


def test_signup_logs_the_new_user_in(client: Client):
    response = client.post(
        "/accounts/signup/",
        {"username": "carol", "password1": "a-long-pass-9876", "password2": "a-long-pass-9876"},
    )
    assert response.status_code == 302
    assert b"Log out carol" in client.get("/chat/").content
