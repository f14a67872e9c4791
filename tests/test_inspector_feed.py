"""The inspector's live feed socket with Channels' WebsocketCommunicator on the real ASGI app."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from config.asgi import application
from memory.services import add_memory, delete_memory, set_pinned, update_memory
from memory.types import Scope
from tests.chat_helpers import anonymous_cookie, refusal_code, session_cookie_for_user
from tests.memory_helpers import ANYONE, EXTRACTOR, STAFF, USER

pytestmark = pytest.mark.django_db(transaction=True)

XSS = "<script>alert(1)</script>"


def _staff(username: str, *perms: str, staff: bool = True) -> Any:
    user = get_user_model().objects.create_user(username, password=f"pw-{username}-12345", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="memory", codename=codename))
    return user


def _socket(cookie: str, query: str = "", *, origin: str = "http://localhost") -> WebsocketCommunicator:
    headers = [(b"cookie", cookie.encode()), (b"origin", origin.encode()), (b"host", b"localhost")]
    path = "/ws/inspector/feed/" + (f"?{query}" if query else "")
    return WebsocketCommunicator(application, path, headers=headers)


async def _cookie_for(username: str, *perms: str, staff: bool = True) -> str:
    user = await sync_to_async(_staff)(username, *perms, staff=staff)
    return await sync_to_async(session_cookie_for_user)(user)


async def test_a_mutation_arrives_as_an_escaped_html_fragment() -> None:
    cookie = await _cookie_for("vera", "view_memories")
    comm = _socket(cookie)
    connected, _ = await comm.connect()
    assert connected
    try:
        memory = await sync_to_async(add_memory)(text=XSS, scope=Scope(user_id="user-7"), actor=EXTRACTOR)
        html = await comm.receive_from(timeout=10)
        assert html.lstrip().startswith('<li class="feed-entry feed-added"')
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert f'href="/inspector/memories/{memory.id}/"' in html
        assert 'href="/inspector/users/user-7/"' in html
        assert "model gpt-test" in html  # the extractor's model is shown with its id

        await sync_to_async(set_pinned)(
            owner=ANYONE, memory_id=memory.id, pinned=True, actor=STAFF, reason="<b>why</b>"
        )
        html = await comm.receive_from(timeout=10)
        assert "Pinned" in html and "support-1" in html
        assert "&lt;b&gt;why&lt;/b&gt;" in html and "<b>why</b>" not in html
    finally:
        await comm.disconnect()


async def test_the_feed_can_follow_one_user_or_one_memory() -> None:
    cookie = await _cookie_for("eddie", "change_memories")  # change implies view
    mine = await sync_to_async(add_memory)(text="Mine", scope=Scope(user_id="a|b c"), actor=USER)
    other = await sync_to_async(add_memory)(text="Other", scope=Scope(user_id="a"), actor=USER)
    by_user = _socket(cookie, "user_id=a%7Cb+c")
    by_memory = _socket(cookie, f"memory_id={mine.id}")
    assert (await by_user.connect())[0] and (await by_memory.connect())[0]
    try:
        await sync_to_async(update_memory)(owner=ANYONE, memory_id=other.id, text="Other, edited", actor=USER)
        await sync_to_async(add_memory)(text="Mine too", scope=Scope(user_id="a|b c"), actor=USER)
        await sync_to_async(delete_memory)(owner=ANYONE, memory_id=mine.id, actor=USER, reason="gone")
        first = await by_user.receive_from(timeout=10)
        second = await by_user.receive_from(timeout=10)
        assert "Mine too" in first and "Deleted" in second
        only = await by_memory.receive_from(timeout=10)
        assert "Deleted" in only and "gone" in only
        assert await by_user.receive_nothing(timeout=0.5)
        assert await by_memory.receive_nothing(timeout=0.5)
    finally:
        await by_user.disconnect()
        await by_memory.disconnect()


async def _assert_refused_with_4403(cookie: str) -> None:
    comm = _socket(cookie)
    try:
        assert await refusal_code(comm) == 4403
    finally:
        await comm.disconnect()


@pytest.mark.parametrize(
    ("username", "perms", "staff"),
    [
        ("plain", (), False),
        ("customer-with-perm", ("view_memories",), False),
        ("staff-without-perm", (), True),
    ],
)
async def test_others_are_refused_with_4403(username: str, perms: tuple[str, ...], staff: bool) -> None:
    await _assert_refused_with_4403(await _cookie_for(username, *perms, staff=staff))


async def test_anonymous_visitors_are_refused_as_signed_out() -> None:
    comm = _socket(await sync_to_async(anonymous_cookie)())
    try:
        assert await refusal_code(comm) == 4401
    finally:
        await comm.disconnect()


async def test_a_foreign_origin_is_refused() -> None:
    cookie = await _cookie_for("vera", "view_memories")
    comm = _socket(cookie, origin="https://evil.example")
    try:
        assert await refusal_code(comm) == 4403
    finally:
        await comm.disconnect()


async def test_messages_from_the_page_are_ignored() -> None:
    cookie = await _cookie_for("vera", "view_memories")
    comm = _socket(cookie)
    assert (await comm.connect())[0]
    try:
        await comm.send_to(text_data="anything")
        assert await comm.receive_nothing(timeout=0.3)
        # Still connected and still delivering.
        await sync_to_async(add_memory)(text="Still here", scope=Scope(user_id="u"), actor=USER)
        assert "Still here" in await asyncio.wait_for(comm.receive_from(), timeout=10)
    finally:
        await comm.disconnect()
