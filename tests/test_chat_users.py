"""Issue 14, end users, over HTTP and in unit tests: where login and logout land, chat titles and
paging, memories in the user's words without scores, forget with undo, the memory a link names,
and offline replies that say "offline" once and do not contradict themselves."""

import re
import time
from dataclasses import replace

import pytest
from django.test import Client

from chat import selectors
from chat.offline import compose_reply
from chat.phrasing import second_person
from chat.services import restore_own_memory
from chat.titles import title_from_message
from chat.turns import _save_user_message, memories_used
from memory import working
from memory.extraction.rules.text import only_asks
from memory.prompt import build_prompt
from memory.query import MemoryFilter
from memory.search import search_memories
from memory.selectors import get_memory
from memory.services import add_memory, delete_memory, set_pinned
from memory.types import Actor, ActorKind, MemoryLocked, Scope, ScoreBreakdown, SearchHit
from tests.chat_helpers import make_user
from tests.memory_helpers import ANYONE, STAFF, USER

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


@pytest.fixture
def offline(settings):
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""


# --- 1. login and logout land on the product ---------------------------------------------------


def test_login_lands_on_the_chats_or_a_safe_next(client: Client):
    make_user("alice")
    form = {"username": "alice", "password": "pw-alice-12345"}
    assert client.post("/accounts/login/", form)["Location"] == "/chat/"
    client.logout()
    response = client.post("/accounts/login/", {**form, "next": "/chat/me/memories/"})
    assert response["Location"] == "/chat/me/memories/"
    client.logout()
    response = client.post("/accounts/login/", {**form, "next": "https://evil.example/phish"})
    assert response["Location"] == "/chat/", "an off-site next is ignored"


def test_logout_lands_on_the_login_page_saying_signed_out(client: Client):
    user, _ = make_user("alice")
    client.force_login(user)
    assert client.get("/accounts/logout/").status_code == 405, "signing out is a POST (CSRF)"
    response = client.post("/accounts/logout/", follow=True)
    assert response.redirect_chain == [("/accounts/login/", 302)]
    body = response.content.decode()
    assert "You are signed out." in body
    assert "Logged out" not in body and "quality time" not in body
    assert "_auth_user_id" not in client.session


def test_login_and_signup_forms_have_labels_and_plain_errors(client: Client):
    make_user("alice")
    body = client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).content.decode()
    assert 'class="form-errors" role="alert"' in body and "correct username and password" in body
    assert '<label for="id_username">Username</label>' in body
    body = client.post(
        "/accounts/signup/",
        {"username": "bob", "password1": "a-long-pass-9876", "password2": "other-pass-9876"},
    ).content.decode()
    assert re.search(r'class="field-error"[^>]*>The two password fields didn', body)
    assert '<label for="id_password1">Password</label>' in body
    assert 'class="account-form"' in body


# --- 2. chat titles and paging -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("Where should I go in Lisbon?", "Where should I go in Lisbon?"),
        ("  Plan   my\n\ttrip\x00 please ", "Plan my trip please"),
        (
            "I want to plan a two week trip through Portugal and Spain with my family next summer",
            "I want to plan a two week trip through Portugal and Spain\u2026",
        ),
        ("x" * 100, "x" * 60 + "\u2026"),
        ("\x00\x01 \n", ""),
    ],
)
def test_a_title_from_a_message_is_short_clean_and_cut_at_a_word(message, title):
    assert title_from_message(message) == title


def test_the_first_message_names_the_chat_and_a_rename_sticks(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    client.post("/chat/new")
    (session,) = working.list_sessions(user_id=memory_user)
    assert session.title == "New chat"
    _, title = _save_user_message(
        session_id=session.id, text="Help me plan a trip to Porto", client_id="c", at=0
    )
    assert title == "Help me plan a trip to Porto"
    assert working.get_session(session_id=session.id).title == "Help me plan a trip to Porto"  # type: ignore[union-attr]
    _save_user_message(session_id=session.id, text="and a second message", client_id="d", at=0)
    assert working.get_session(session_id=session.id).title == "Help me plan a trip to Porto"  # type: ignore[union-attr]

    client.post(f"/chat/{session.id}/rename", {"title": "Porto"})
    other = working.ensure_session(session_id="renamed-first", user_id=memory_user, title="Mine")
    _save_user_message(session_id=other.id, text="Hello there", client_id="e", at=0)
    assert working.get_session(session_id=other.id).title == "Mine", "a chat the user named keeps its name"  # type: ignore[union-attr]


def test_rename_strips_control_characters_and_refuses_bad_titles(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    working.ensure_session(session_id="mine", user_id=memory_user, title="Old")
    client.post("/chat/mine/rename", {"title": "Trip\x00 to\x07 Porto"})
    assert working.get_session(session_id="mine").title == "Trip to Porto"  # type: ignore[union-attr]
    for bad in ("", "   ", "\x00\x01", "x" * 201):
        response = client.post("/chat/mine/rename", {"title": bad}, follow=True)
        assert response.status_code == 200
        assert working.get_session(session_id="mine").title == "Trip to Porto"  # type: ignore[union-attr]
        assert "title" in response.content.decode().lower()
    # htmx gets the title partial back, with the error in the form.
    partial = client.post("/chat/mine/rename", {"title": " ", "place": "list"}, headers=HX).content.decode()
    assert 'id="title-mine"' in partial
    assert "Give the chat a title." in partial and 'aria-invalid="true"' in partial
    partial = client.post(
        "/chat/mine/rename", {"title": "Lisbon", "place": "list"}, headers=HX
    ).content.decode()
    assert 'class="session-title"' in partial and ">Lisbon</a>" in partial
    assert "<html" not in partial
    # Without JS the form posts back to where it came from (a safe next only).
    response = client.post("/chat/mine/rename", {"title": "Lisbon", "next": "/chat/mine/"})
    assert response["Location"] == "/chat/mine/"
    response = client.post("/chat/mine/rename", {"title": "Lisbon", "next": "//evil.example/"})
    assert response["Location"] == "/chat/"
    assert Client(enforce_csrf_checks=True).post("/chat/mine/rename", {"title": "x"}).status_code == 403


def test_a_long_chat_list_is_paged_newest_first(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    for n in range(45):
        working.ensure_session(session_id=f"chat-{n:02d}", user_id=memory_user, title=f"Chat number {n}")
    body = client.get("/chat/").content.decode()
    titles = re.findall(r'class="session-title"[^>]*>([^<]+)<', body)
    assert titles == [f"Chat number {n}" for n in range(44, 24, -1)]
    assert 'href="?page=2"' in body and "Page 1 of 3" in body and 'rel="prev"' not in body
    body = client.get("/chat/?page=3").content.decode()
    assert re.findall(r'class="session-title"[^>]*>([^<]+)<', body) == [
        f"Chat number {n}" for n in range(4, -1, -1)
    ]
    assert 'href="?page=2"' in body and 'rel="next"' not in body
    for odd in ("abc", "-1", "0", "99999999999999999999"):
        assert client.get(f"/chat/?page={odd}").status_code == 200
    assert "Page 3 of 3" in client.get("/chat/?page=99").content.decode()


# --- 3. memories in the second person, grouped, no scores -----------------------------------------


@pytest.mark.parametrize(
    ("third", "second"),
    [
        ("The user likes green tea", "You like green tea"),
        ("the user's name is Priya", "Your name is Priya"),
        ("Alice asked the user for help", "Alice asked you for help"),
        ("User likes hiking", "You like hiking"),
        ("The users of the app are many", "The users of the app are many"),
        ("Priya likes tea", "Priya likes tea"),
    ],
)
def test_second_person_handles_the_user(third, second):
    assert second_person(third) == second


def test_the_memories_page_speaks_to_the_user_without_scores_or_types(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    fact = add_memory(
        text="User's name is Priya", scope=Scope(user_id=memory_user), actor=USER, topics=["identity"]
    )
    set_pinned(owner=ANYONE, memory_id=fact.id, pinned=True, actor=STAFF)
    add_memory(
        text="The user likes jazz", scope=Scope(user_id=memory_user), actor=USER, topics=["preferences"]
    )
    body = client.get("/chat/me/memories/").content.decode()
    assert "Your name is Priya." in body and "You like jazz." in body
    assert "<h2>About you</h2>" in body
    for engineer_word in ("semantic", "episodic", "final", "vector", "pinned", "User&#x27;s"):
        assert engineer_word not in body, engineer_word
    # The chat's "Memories used": a user gets the sentence, no scores; staff get the scores.
    hits = search_memories(filter=MemoryFilter.build(user_id=memory_user), text="name", threshold=0).hits
    mine = memories_used(hits, staff=False)
    assert {m["text"] for m in mine} >= {"Your name is Priya."}
    assert all("scores" not in m and "type" not in m for m in mine)
    assert all("scores" in m for m in memories_used(hits, staff=True))


# --- 4. forget asks, explains, and can be undone -----------------------------------------------


def test_forget_explains_itself_and_undo_restores_the_memory_and_its_words(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    scope = Scope(user_id=memory_user)
    said = add_memory(text="I love jazz", scope=scope, actor=USER, type="message", source=["t1"])
    fact = add_memory(text="User loves jazz", scope=scope, actor=USER, source=["t1"])
    body = client.get("/chat/me/memories/").content.decode()
    assert "stops using this in your chats at once" in body and "You can undo this for 7 days" in body
    assert "Yes, forget it" in body

    response = client.post(f"/chat/me/memories/{fact.id}/forget", follow=True)
    assert (
        get_memory(owner=ANYONE, memory_id=fact.id).deleted
        and get_memory(owner=ANYONE, memory_id=said.id).deleted
    )
    body = response.content.decode()
    assert "Forgotten: “You love jazz.”" in body and "removed for good after 7 days" in body
    assert f'action="/chat/me/memories/{fact.id}/restore"' in body
    assert f'name="source" value="{said.id}"' in body
    # After a reload the box at the top is gone, and the "Recently forgotten" list keeps the Undo.
    body = client.get("/chat/me/memories/").content.decode()
    assert "undo-box" not in body and body.count(f'action="/chat/me/memories/{fact.id}/restore"') == 1

    response = client.post(f"/chat/me/memories/{fact.id}/restore", {"source": [said.id]})
    assert response["Location"] == f"/chat/me/memories/?memory={fact.id}#memory-{fact.id}"
    assert (
        not get_memory(owner=ANYONE, memory_id=fact.id).deleted
        and not get_memory(owner=ANYONE, memory_id=said.id).deleted
    )
    assert "Restored: You love jazz." in client.get(response["Location"]).content.decode()


def test_undo_cannot_restore_what_is_not_yours_or_not_forgotten(client: Client):
    user, memory_user = make_user("alice")
    _, bob = make_user("bob")
    client.force_login(user)
    bobs = add_memory(text="Bob likes tea", scope=Scope(user_id=bob), actor=USER)
    delete_memory(owner=ANYONE, memory_id=bobs.id, actor=USER)
    mine = add_memory(text="User likes coffee", scope=Scope(user_id=memory_user), actor=USER)
    client.post(f"/chat/me/memories/{mine.id}/forget")
    # Alice's undo form naming Bob's forgotten memory as one of its words restores only hers.
    client.post(f"/chat/me/memories/{mine.id}/restore", {"source": [bobs.id]})
    assert (
        not get_memory(owner=ANYONE, memory_id=mine.id).deleted
        and get_memory(owner=ANYONE, memory_id=bobs.id).deleted
    )
    client.post(f"/chat/me/memories/{bobs.id}/restore")
    assert get_memory(owner=ANYONE, memory_id=bobs.id).deleted
    for bad in ("x" * 300, "nope"):
        assert client.post(f"/chat/me/memories/{bad}/restore").status_code in (302, 404)


# --- 5. the memory a link names is listed and marked -------------------------------------------


def test_a_linked_memory_is_listed_and_marked_even_when_older_than_the_page(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    scope = Scope(user_id=memory_user)
    oldest = add_memory(text="User has a cat named Tom", scope=scope, actor=USER)
    for n in range(3):
        add_memory(text=f"User visited city number {n}", scope=scope, actor=USER)
    page = selectors.own_memories_grouped(user_id=memory_user, limit=2, highlight=oldest.id)
    listed = [item.memory.id for _, items in page.groups for item in items]
    assert oldest.id in listed and page.highlight == oldest.id
    assert selectors.own_memories_grouped(user_id=memory_user, limit=2).highlight == ""
    body = client.get(f"/chat/me/memories/?memory={oldest.id}").content.decode()
    assert f'<li id="memory-{oldest.id}" class="highlighted" aria-current="true">' in body
    _, bob = make_user("bob")
    bobs = add_memory(text="Bob likes tea", scope=Scope(user_id=bob), actor=USER)
    body = client.get(f"/chat/me/memories/?memory={bobs.id}").content.decode()
    assert "Bob likes tea" not in body and "highlighted" not in body
    assert client.get("/chat/me/memories/?memory=%00bad").status_code == 200


# --- 6. offline replies -------------------------------------------------------------------------


def test_offline_replies_do_not_repeat_the_notice_or_contradict_what_they_learned(offline):
    working.ensure_session(session_id="s-new", user_id="alice")
    message = "Hi, I'm vegetarian. What do you know about me?"
    built = build_prompt(user_id="alice", session_id="s-new", message=message)
    assert built.profile, "a question about the user as a whole"
    reply = compose_reply(built, message, scope=Scope(user_id="alice"))
    assert "Offline mode" not in reply, "the chat page says it once"
    assert "I don't know anything" not in reply and "I don't remember" not in reply
    assert "I'll remember this" in reply and "You are vegetarian" in reply


# --- Outside tester's round (issue 14 follow-up) ------------------------------------------------


def _forget(client: Client, memory_id: str) -> None:
    assert client.post(f"/chat/me/memories/{memory_id}/forget").status_code == 302


def test_recently_forgotten_keeps_the_undo_after_a_reload(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    scope = Scope(user_id=memory_user)
    said = add_memory(text="I love jazz", scope=scope, actor=USER, type="message", source=["t1"])
    fact = add_memory(text="User loves jazz", scope=scope, actor=USER, source=["t1"])
    by_staff = add_memory(text="User lives in Porto", scope=scope, actor=USER)
    delete_memory(owner=ANYONE, memory_id=by_staff.id, actor=STAFF)
    _forget(client, fact.id)
    client.get("/chat/me/memories/")  # the one-time box at the top is shown and gone
    body = client.get("/chat/me/memories/").content.decode()
    section = body.split('id="recently-forgotten"', 1)[1]
    assert "<h2>Recently forgotten</h2>" in section and "You love jazz." in section
    assert "Forgotten on " in section and "You can undo each for 7 days" in section
    assert f'action="/chat/me/memories/{fact.id}/restore"' in section
    assert f'name="source" value="{said.id}"' in section, "its words come back with it"
    assert f"/chat/me/memories/{said.id}/restore" not in section, "not listed apart from its fact"
    assert "Porto" not in section, "support's deletes are not the user's to undo"
    client.post(f"/chat/me/memories/{fact.id}/restore", {"source": [said.id]})
    assert (
        not get_memory(owner=ANYONE, memory_id=fact.id).deleted
        and not get_memory(owner=ANYONE, memory_id=said.id).deleted
    )
    assert 'id="recently-forgotten"' not in client.get("/chat/me/memories/").content.decode()


def test_recently_forgotten_is_newest_first_and_capped():
    _, memory_user = make_user("alice")
    scope = Scope(user_id=memory_user)
    me = Actor(ActorKind.USER, memory_user)
    ids = []
    for n in range(selectors.RECENTLY_FORGOTTEN + 5):
        memory = add_memory(text=f"User visited city number {n}", scope=scope, actor=USER)
        delete_memory(owner=ANYONE, memory_id=memory.id, actor=me)
        ids.append(memory.id)
    listed = [f.memory.id for f in selectors.recently_forgotten(user_id=memory_user)]
    assert listed == ids[::-1][: selectors.RECENTLY_FORGOTTEN]


def test_a_user_cannot_restore_what_staff_deleted(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    memory = add_memory(text="User lives in Porto", scope=Scope(user_id=memory_user), actor=USER)
    delete_memory(owner=ANYONE, memory_id=memory.id, actor=STAFF)
    response = client.post(f"/chat/me/memories/{memory.id}/restore", follow=True)
    assert response.status_code == 200
    assert "You can only undo what you forgot yourself" in response.content.decode()
    assert get_memory(owner=ANYONE, memory_id=memory.id).deleted
    # The chat's service says the same (the rule is the memory policy's).
    with pytest.raises(MemoryLocked):
        restore_own_memory(user_id=memory_user, memory_id=memory.id)
    assert get_memory(owner=ANYONE, memory_id=memory.id).deleted


def test_a_link_to_a_forgotten_memory_says_what_became_of_it(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    scope = Scope(user_id=memory_user)
    mine = add_memory(text="User has a cat named Tom", scope=scope, actor=USER)
    _forget(client, mine.id)
    client.get("/chat/me/memories/")
    body = client.get(f"/chat/me/memories/?memory={mine.id}").content.decode()
    note = body.split('id="missing-memory"', 1)[1].split("</div>", 1)[0]
    assert "That memory was forgotten on " in note
    assert f'action="/chat/me/memories/{mine.id}/restore"' in note
    by_staff = add_memory(text="User lives in Porto", scope=scope, actor=USER)
    delete_memory(owner=ANYONE, memory_id=by_staff.id, actor=STAFF)
    note = (
        client.get(f"/chat/me/memories/?memory={by_staff.id}")
        .content.decode()
        .split('id="missing-memory"')[1]
    )
    note = note.split("</div>", 1)[0]
    assert "That memory was forgotten on " in note and "restore" not in note
    _, bob = make_user("bob")
    for other in (add_memory(text="Bob likes tea", scope=Scope(user_id=bob), actor=USER),):
        delete_memory(owner=ANYONE, memory_id=other.id, actor=Actor(ActorKind.USER, bob))
        body = client.get(f"/chat/me/memories/?memory={other.id}").content.decode()
        assert "That memory no longer exists." in body and "Bob likes tea" not in body
    for gone in ("01NOSUCHMEMORY", "%00bad"):
        assert (
            "That memory no longer exists."
            in client.get(f"/chat/me/memories/?memory={gone}").content.decode()
        )
    assert 'id="missing-memory"' not in client.get("/chat/me/memories/").content.decode()


@pytest.mark.parametrize(
    ("third", "second"),
    [
        (
            "User's partner's name is O'Neill and user lives in Lisbon",
            "Your partner's name is O'Neill and you live in Lisbon",
        ),
        ("User likes tea, user also plays chess", "You like tea, you also play chess"),
        ("User moved to Porto because user got a job", "You moved to Porto because you got a job"),
        ("User is tall but user isn't heavy", "You are tall but you aren't heavy"),
        ("User lives with Ana and user's dog Rex", "You live with Ana and your dog Rex"),
        ("User reads while the user waits", "You read while you wait"),
        # A noun after "user" is a kind of thing, not the user.
        ("User reads the user manual", "You read the user manual"),
        ("Ana likes tea and user manuals are boring", "Ana likes tea and user manuals are boring"),
        ("User wrote a guide for user groups", "You wrote a guide for user groups"),
    ],
)
def test_second_person_after_a_conjunction(third, second):
    assert second_person(third) == second


def test_the_chat_list_speaks_plain_words_and_tokens_are_for_staff(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    working.ensure_session(session_id="chat-empty", user_id=memory_user, title="Empty")
    working.ensure_session(session_id="chat-busy", user_id=memory_user, title="Busy")
    for n, text in enumerate(("hello", "how are you", "fine")):
        _save_user_message(session_id="chat-busy", text=text, client_id=f"c{n}", at=time.time())
    body = client.get("/chat/").content.decode()
    assert "No messages yet" in body and "3 messages" in body and "last active just now" in body
    assert "tokens" not in body and "0 messages" not in body
    assert 'href="/chat/me/memories/">Your memories</a>' in body
    staff, staff_user = make_user("sam", staff=True)
    working.ensure_session(session_id="chat-staff", user_id=staff_user, title="Staff")
    client.force_login(staff)
    assert "tokens 0" in client.get("/chat/").content.decode()


def test_new_chat_opens_the_newest_chat_while_it_is_still_empty(client: Client):
    user, memory_user = make_user("alice")
    client.force_login(user)
    first = client.post("/chat/new")["Location"]
    assert client.post("/chat/new")["Location"] == first, "no second empty chat"
    assert len(working.session_ids_for_user(user_id=memory_user)) == 1
    session_id = first.rstrip("/").rsplit("/", 1)[1]
    _save_user_message(session_id=session_id, text="hello", client_id="c", at=time.time())
    second = client.post("/chat/new")["Location"]
    assert second != first and len(working.session_ids_for_user(user_id=memory_user)) == 2


def test_the_header_links_to_your_memories_for_people_with_memories(client: Client):
    assert "Your memories" not in client.get("/chat/").content.decode(), "a visitor who never chatted"
    client.post("/chat/new")
    assert "Your memories" in client.get("/chat/").content.decode(), "a visitor who started a chat"


def _hit(memory_id: str, reason: str, score: ScoreBreakdown) -> SearchHit:
    return SearchHit(memory=get_memory(owner=ANYONE, memory_id=memory_id), score=score, reason=reason)  # type: ignore[arg-type]


@pytest.mark.parametrize("profile", [False, True])
def test_offline_replies_do_not_tell_back_questions_or_repeat_bullets(offline, profile):
    working.ensure_session(session_id="s-q", user_id="alice")
    scope = Scope(user_id="alice")
    asked = add_memory(text="What do you know about my diet?", scope=scope, actor=USER, type="message")
    asked_plain = add_memory(text="hey what is my diet", scope=scope, actor=USER, type="message")
    fact = add_memory(text="User is vegetarian", scope=scope, actor=USER)
    again = add_memory(text="The user is vegetarian.", scope=scope, actor=USER)
    told = add_memory(text="I cook pasta on Sundays", scope=scope, actor=USER, type="message")
    score = (
        search_memories(filter=MemoryFilter.build(user_id="alice"), text="diet", threshold=0).hits[0].score
    )
    reason = "profile" if profile else "match"
    hits = [_hit(m.id, reason, score) for m in (asked, asked_plain, fact, again, told)]
    built = replace(
        build_prompt(user_id="alice", session_id="s-q", message="ok"), memories=hits, profile=profile
    )
    reply = compose_reply(built, "ok", scope=scope)
    assert "diet" not in reply, reply
    assert reply.count("You are vegetarian") == 1, reply
    if profile:  # the match path shows the best three only
        assert "I cook pasta on Sundays" in reply


@pytest.mark.parametrize(
    ("text", "asks_only"),
    [
        ("What do you know about my diet?", True),
        ("hey what is my diet", True),
        ("ok. what's my dog called?", True),
        ("Can you remind me, what is my name?", True),
        ("Do you remember my dog, what's his name?", True),
        ("I cook pasta on Sundays", False),
        # Told, then asked: the held-out persona suites lost these answers when every message
        # ending in "?" was dropped from offline replies.
        (
            "thanks. on weekends i go ice fishing with my brother, any good lakes near Poznań?",
            False,
        ),
        (
            "Good tips. I've played mridangam since I was a kid in Palakkad. How do I fit 30 min a day in?",
            False,
        ),
        ("my old Singer machine struggles with thick kente, should I use a different needle?", False),
    ],
)
def test_a_message_that_tells_then_asks_is_not_only_a_question(text, asks_only):
    assert only_asks(text) is asks_only


def test_offline_replies_say_back_what_was_told_before_a_question(offline):
    working.ensure_session(session_id="s-t", user_id="alice")
    scope = Scope(user_id="alice")
    told = add_memory(
        text="thanks. on weekends I go ice fishing with my brother, are there good lakes near Poznań?",
        scope=scope,
        actor=USER,
        type="message",
    )
    score = (
        search_memories(filter=MemoryFilter.build(user_id="alice"), text="ice fishing", threshold=0)
        .hits[0]
        .score
    )
    built = replace(
        build_prompt(user_id="alice", session_id="s-t", message="what do I do on winter weekends?"),
        memories=[_hit(told.id, "match", score)],
    )
    reply = compose_reply(built, "what do I do on winter weekends?", scope=scope)
    assert "ice fishing" in reply, reply
