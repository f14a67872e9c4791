"""Both WebSockets through the real ASGI stack (config.asgi.application): the origin check compares
scheme, host and port; refusals are accepted and closed with a code the page can read; hostile
paths and frames get a clean answer and the socket stays up."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.test import Client

from memory import working
from tests.chat_helpers import (
    frames_until,
    make_user,
    open_session,
    refusal_code,
    session_cookie_for_user,
    socket_to,
)

pytestmark = pytest.mark.django_db(transaction=True)

FEED = "/ws/inspector/feed/"


@pytest.fixture
def llm(product_llm: Any) -> Any:
    return product_llm


def _alice_with_chat() -> tuple[str, str, str]:
    user, memory_user = make_user("alice")
    return session_cookie_for_user(user), open_session(memory_user, "s-alice"), memory_user


def _staff_cookie() -> str:
    user, _ = make_user("vera", staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="memory", codename="view_memories")
    )
    return session_cookie_for_user(user)


async def _accepted(comm: Any) -> bool:
    connected, _ = await comm.connect()
    return bool(connected) and await comm.receive_nothing(timeout=0.2)


PUBLIC = {"WEBSOCKET_ALLOWED_ORIGINS": ["https://chat.example.com"]}
SUBDOMAINS = {"WEBSOCKET_ALLOWED_ORIGINS": ["https://*.example.com"]}
# (origin, host, extra settings, allowed?)
ORIGIN_CASES: list[tuple[str | None, str, dict[str, Any], bool]] = [
    ("http://localhost", "localhost", {}, True),
    ("http://127.0.0.1:8000", "127.0.0.1:8000", {}, True),
    ("http://LOCALHOST:80", "localhost", {}, True),  # default port and case do not matter
    # Same host name, another port: another origin (any local service could serve that page).
    ("http://127.0.0.1:9999", "127.0.0.1:8000", {}, False),
    ("http://localhost:9999", "localhost", {}, False),
    ("https://localhost", "localhost", {}, False),  # a plain-HTTP socket from an HTTPS page
    ("http://evil.example", "localhost", {}, False),
    ("http://evil.example", "evil.example", {}, False),  # Host not in ALLOWED_HOSTS
    ("null", "localhost", {}, False),
    (None, "localhost", {}, False),
    # Configured origins (default: CSRF_TRUSTED_ORIGINS), e.g. the public name behind a proxy.
    ("https://chat.example.com", "127.0.0.1:8000", PUBLIC, True),
    ("https://chat.example.com:8443", "127.0.0.1:8000", PUBLIC, False),
    ("http://chat.example.com", "127.0.0.1:8000", PUBLIC, False),
    ("https://a.example.com", "127.0.0.1:8000", SUBDOMAINS, True),
    ("https://example.com.evil", "127.0.0.1:8000", SUBDOMAINS, False),
]


@pytest.mark.parametrize(("origin", "host", "overrides", "allowed"), ORIGIN_CASES)
async def test_the_origin_must_match_scheme_host_and_port(
    llm: Any, settings: Any, origin: str | None, host: str, overrides: dict[str, Any], allowed: bool
) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    cookie, session_id, _ = await sync_to_async(_alice_with_chat)()
    staff = await sync_to_async(_staff_cookie)()
    for path, cookie_ in ((f"/ws/chat/{session_id}/", cookie), (FEED, staff)):
        comm = socket_to(path, cookie_, origin=origin, host=host)
        try:
            if allowed:
                assert await _accepted(comm), (path, origin, host)
            else:
                assert await refusal_code(comm) == 4403, (path, origin, host)
        finally:
            await comm.disconnect()


async def test_behind_a_tls_proxy_the_https_origin_of_the_page_is_its_own(llm: Any, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    cookie, session_id, _ = await sync_to_async(_alice_with_chat)()
    comm = socket_to(
        f"/ws/chat/{session_id}/", cookie, origin="https://chat.example.com", host="chat.example.com"
    )
    comm.scope["headers"].append((b"x-forwarded-proto", b"https"))
    try:
        assert await _accepted(comm)
    finally:
        await comm.disconnect()
    plain = socket_to(
        f"/ws/chat/{session_id}/", cookie, origin="https://chat.example.com", host="chat.example.com"
    )
    try:
        assert await refusal_code(plain) == 4403, "without the proxy's header the socket is plain ws"
    finally:
        await plain.disconnect()


@pytest.mark.parametrize(
    "path",
    [
        "/ws/chat/" + "x" * 300 + "/",
        "/ws/chat/a%09b/",
        "/ws/chat/a%0Ab/",
        "/ws/chat/a%00b/",
        "/ws/chat/%ED%A0%BD/",
        "/ws/chat/a/b/",
        "/ws/chat//",
        "/ws/nope/",
        "/",
        "/ws/inspector/feed/extra/",
    ],
)
async def test_hostile_and_unknown_paths_are_closed_with_4404(llm: Any, path: str) -> None:
    cookie, _, _ = await sync_to_async(_alice_with_chat)()
    comm = socket_to(path, cookie)
    try:
        assert await refusal_code(comm) == 4404
    finally:
        await comm.disconnect()


async def test_signing_out_closes_the_logins_sockets_with_4401_and_they_stay_refused(llm: Any) -> None:
    cookie, session_id, _ = await sync_to_async(_alice_with_chat)()
    staff = await sync_to_async(_staff_cookie)()
    chat = socket_to(f"/ws/chat/{session_id}/", cookie)
    feed = socket_to(FEED, staff)
    other_login = socket_to(f"/ws/chat/{session_id}/", await sync_to_async(_second_login)())
    for comm in (chat, feed, other_login):
        assert await _accepted(comm)
    try:
        for cookie_ in (cookie, staff):
            response = await sync_to_async(_log_out)(cookie_)
            assert response.status_code in (200, 302)
        assert (await chat.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4401}
        assert (await feed.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4401}
        assert await other_login.receive_nothing(timeout=0.3), "alice's login in another browser stays"
        again = socket_to(f"/ws/chat/{session_id}/", cookie)
        try:
            assert await refusal_code(again) == 4401
        finally:
            await again.disconnect()
    finally:
        for comm in (chat, feed, other_login):
            await comm.disconnect()


def _second_login() -> str:
    from django.contrib.auth import get_user_model

    return session_cookie_for_user(get_user_model().objects.get(username="alice"))


def _log_out(cookie: str) -> Any:
    name, _, value = cookie.partition("=")
    client = Client()
    client.cookies[name] = value
    return client.post("/accounts/logout/")


async def test_hostile_frames_get_error_frames_and_the_socket_stays_up(llm: Any, settings: Any) -> None:
    cookie, session_id, _ = await sync_to_async(_alice_with_chat)()
    comm = socket_to(f"/ws/chat/{session_id}/", cookie)
    assert await _accepted(comm)
    try:
        cases = [
            ("[" * 5000 + "]" * 5000, "bad_frame", "nested too deeply"),
            ('{"a":' * 3000 + "1" + "}" * 3000, "bad_frame", "nested too deeply"),
            (json.dumps({"type": "message", "text": 42, "client_id": "c1"}), "bad_frame", "must be a string"),
            (
                json.dumps({"type": "message", "text": ["hi"], "client_id": "c1"}),
                "bad_frame",
                "must be a string",
            ),
            (
                json.dumps({"type": "message", "text": "\x00\x00", "client_id": "c1"}),
                "empty_message",
                "empty",
            ),
            ('{"type": "message", "text": "hi", "client_id": "\\ud83d"}', "", ""),
            ('{"type": "\\ud800"}', "bad_frame", "Unknown frame type"),
            ('{"type": "message", "text": NaN, "client_id": "c2"}', "bad_frame", "must be a string"),
        ]
        for text, code, words in cases:
            await comm.send_to(text_data=text)
            if not code:  # a usable message after all: it runs
                frames = await frames_until(comm, "done")
                assert frames[0]["type"] == "turn_started" and frames[0]["client_id"] == "\ufffd"
                continue
            frame = await comm.receive_json_from(timeout=5)
            assert (frame["type"], frame["code"]) == ("error", code), text[:40]
            assert words in frame["message"], frame
        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from())["type"] == "pong", "the socket is still up"
    finally:
        await comm.disconnect()
    messages = await sync_to_async(working.get_messages)(session_id=session_id)
    assert [m.content for m in messages if m.role == "user"] == ["hi"]
