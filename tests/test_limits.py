"""Limits: login throttling, sessions only when needed, chats per user, sign-ups per address, and
the Content-Security-Policy every page is served with (and satisfies: no inline script or style)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from memory import working
from memory.services import add_memory
from memory.types import Scope
from tests.chat_helpers import make_user
from tests.memory_helpers import USER

pytestmark = pytest.mark.django_db

LOCKED = "logging in is paused for 15 minutes"


def _log_in(client: Client, username: str, password: str, *, path: str = "/accounts/login/"):
    return client.post(path, {"username": username, "password": password})


def _logged_in(client: Client) -> bool:
    return SESSION_KEY in client.session


# --- Login throttling -----------------------------------------------------------------------------


def test_wrong_passwords_lock_that_user_out_even_with_the_right_password(client: Client):
    make_user("alice")
    make_user("bob")
    for attempt in range(1, 5):
        response = _log_in(client, "alice", f"wrong-{attempt}")
        assert response.status_code == 200 and LOCKED not in response.content.decode(), attempt
    fifth = _log_in(client, "alice", "wrong-5")
    assert fifth.status_code == 429
    assert LOCKED in fifth.content.decode()
    assert '<form method="post" class="stack">' in fifth.content.decode(), "the login form, not a bare text"

    right = _log_in(client, "alice", "pw-alice-12345")
    assert right.status_code == 429 and LOCKED in right.content.decode()
    assert not _logged_in(client)
    # The inspector's and the admin's logins go through the same check.
    for path in ("/accounts/login/?next=/inspector/", "/admin/login/"):
        assert _log_in(Client(), "alice", "pw-alice-12345", path=path).status_code == 429, path

    other = Client()
    assert _log_in(other, "bob", "pw-bob-12345").status_code == 302, "another user is not affected"
    assert _logged_in(other)

    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        later = Client()
        assert _log_in(later, "alice", "pw-alice-12345").status_code == 302, "after the cool-off"
        assert _logged_in(later)


def test_a_successful_login_resets_the_count(client: Client):
    make_user("alice")
    for _ in range(4):
        _log_in(client, "alice", "wrong")
    assert _log_in(client, "alice", "pw-alice-12345").status_code == 302
    client.logout()
    for _ in range(4):
        assert _log_in(client, "alice", "wrong").status_code == 200


# --- Sessions only when needed --------------------------------------------------------------------

PUBLIC_PAGES = [
    "/",
    "/accounts/login/",
    "/accounts/signup/",
    "/healthz",
    "/static/css/engram.css",
    "/chat/",
    "/chat/me/memories/",
    "/chat/some-chat/",
    "/chat/some-chat/messages",
    "/inspector/",
    "/inspector/status/",
]


def test_cookieless_requests_to_public_pages_create_no_session():
    before = Session.objects.count()
    for n in range(20):
        response = Client().get(PUBLIC_PAGES[n % len(PUBLIC_PAGES)])
        assert response.status_code < 500
        assert "sessionid" not in response.cookies
    anonymous_posts = Client()
    anonymous_posts.post("/chat/some-chat/delete")
    anonymous_posts.post("/chat/me/memories/01J0000000000000000000000/forget")
    assert Session.objects.count() == before


def test_starting_a_chat_gives_an_anonymous_visitor_a_session(client: Client):
    before = Session.objects.count()
    assert b"No chats yet" in client.get("/chat/").content
    response = client.post("/chat/new")
    assert response.status_code == 302
    assert Session.objects.count() == before + 1
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert Session.objects.count() == before + 1, "one session, reused"


# --- Chats per user -------------------------------------------------------------------------------


def test_chats_per_user_are_capped_with_a_clear_message(client: Client, settings):
    settings.CHAT_MAX_SESSIONS_PER_USER = 3
    user, memory_user = make_user("alice")
    client.force_login(user)
    for _ in range(3):
        location = client.post("/chat/new")["Location"]
        assert location.startswith("/chat/")
        # "New chat" reopens a chat nothing was said in yet (issue 14): say something in each.
        working.append_message(session_id=location.rstrip("/").rsplit("/", 1)[1], role="user", content="hi")
    refused = client.post("/chat/new", follow=True)
    assert refused.status_code == 200
    assert "You already have 3 chats" in refused.content.decode()
    assert len(working.session_ids_for_user(user_id=memory_user)) == 3

    oldest = working.session_ids_for_user(user_id=memory_user)[-1]
    client.post(f"/chat/{oldest}/delete")
    assert client.post("/chat/new").status_code == 302
    assert len(working.session_ids_for_user(user_id=memory_user)) == 3


# --- Sign-ups per address -------------------------------------------------------------------------


def _sign_up(username: str, address: str):
    return Client(REMOTE_ADDR=address).post(
        "/accounts/signup/",
        {"username": username, "password1": "a-long-pass-9876", "password2": "a-long-pass-9876"},
    )


def test_sign_ups_are_limited_per_address(settings, django_user_model):
    settings.SIGNUP_RATE_LIMIT_PER_HOUR = 2
    assert _sign_up("carol", "10.1.1.1").status_code == 302
    assert _sign_up("dave", "10.1.1.1").status_code == 302
    refused = _sign_up("erin", "10.1.1.1")
    assert refused.status_code == 429
    assert "Too many accounts were created from your network" in refused.content.decode()
    assert not django_user_model.objects.filter(username="erin").exists()
    assert _sign_up("erin", "10.1.1.2").status_code == 302, "another address is not affected"
    # An invalid form does not use the allowance.
    settings.SIGNUP_RATE_LIMIT_PER_HOUR = 1
    mismatch = Client(REMOTE_ADDR="10.1.1.3").post(
        "/accounts/signup/", {"username": "fay", "password1": "a-long-pass-9876", "password2": "other"}
    )
    assert mismatch.status_code == 200
    assert _sign_up("fay", "10.1.1.3").status_code == 302


def test_new_anonymous_visitors_are_limited_per_address(settings):
    settings.ANON_VISITORS_PER_IP_PER_HOUR = 2
    visitors = [Client(REMOTE_ADDR="10.2.2.2") for _ in range(3)]
    assert visitors[0].post("/chat/new").status_code == 302
    assert visitors[1].post("/chat/new").status_code == 302
    refused = visitors[2].post("/chat/new")
    assert refused.status_code == 429
    assert "Too many new visitors started chatting from your network" in refused.content.decode()
    # A visitor who already chats is no new visitor: their next chat is not counted.
    assert visitors[0].post("/chat/new").status_code == 302
    assert Client(REMOTE_ADDR="10.2.2.3").post("/chat/new").status_code == 302, "another address"


# --- Content-Security-Policy ----------------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|<[^>]+\sstyle\s*=", re.IGNORECASE)


def _staff_client() -> tuple[Client, str]:
    user, memory_user = make_user("sam", staff=True)
    for codename in ("view_memories", "change_memories"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="memory", codename=codename))
    client = Client()
    client.force_login(user)
    return client, memory_user


def test_every_page_has_the_policy_and_no_inline_script_or_style():
    client, memory_user = _staff_client()
    working.ensure_session(session_id="s-1", user_id=memory_user, title="Trip")
    working.append_message(session_id="s-1", role="user", content="I live in Porto")
    memory = add_memory(text="User lives in Porto", scope=Scope(user_id=memory_user), actor=USER)
    pages = [
        "/",
        "/accounts/login/",
        "/accounts/signup/",
        "/healthz",
        "/chat/",
        "/chat/s-1/",
        "/chat/s-1/messages",
        "/chat/me/memories/",
        "/inspector/",
        f"/inspector/users/{memory_user}/",
        "/inspector/sessions/s-1/",
        f"/inspector/memories/{memory.id}/",
        "/inspector/status/",
        "/inspector/status.json",
        "/admin/",
        "/chat/no-such-chat/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code in (200, 404), url
        policy = response.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, url
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, url
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, url
        if url.startswith("/admin/"):
            continue  # Django's own admin templates
        body = response.content.decode()
        assert not INLINE_SCRIPT.search(body), url
        assert not INLINE_HANDLER.search(body), url
        assert not INLINE_STYLE.search(body), url


def test_htmx_is_told_not_to_inject_its_inline_style():
    body = Client().get("/").content.decode()
    assert '<meta name="htmx-config"' in body and '"includeIndicatorStyles":false' in body
