"""The ASGI side through a Redis outage: a real embedded Redis is SIGKILLed and started again on
the same port and data dir, with no restart of the product's own code in between."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from core.outage import REDIS_DOWN, UNAVAILABLE_MESSAGE, QuietOutageFilter
from memory.services import add_memory
from memory.types import Scope
from tests.chat_helpers import communicator, frames_until, make_user, open_session, session_cookie_for_user
from tests.memory_helpers import EXTRACTOR
from tests.outage_helpers import kill, private_redis, restart

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(tmp_path):
    with private_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def offline(settings):
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""


def test_a_page_during_an_outage_is_a_plain_503_and_works_again_after(server, client: Client):
    user, memory_user = make_user("alice")
    open_session(memory_user, "s-outage")
    client.force_login(user)
    assert client.get("/chat/").status_code == 200

    kill(server)
    page = client.get("/chat/")
    assert page.status_code == 503
    body = page.content.decode()
    assert UNAVAILABLE_MESSAGE in body and "Traceback" not in body
    assert page["Retry-After"]
    status = client.get("/healthz")
    assert status.status_code == 503 and status.json() == {"status": "degraded"}

    restart(server)
    page = client.get("/chat/")
    assert page.status_code == 200, "redis-py reconnects by itself; no restart of the server"
    assert "s-outage" in page.content.decode() or page.content, "the chat list renders"
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_staff_status_page_shows_the_outage(server, client: Client, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("sam", password="pw-sam-12345", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_memories"))
    client.force_login(staff)
    kill(server)
    page = client.get("/inspector/status/")
    assert page.status_code == 503
    body = page.content.decode()
    assert "Redis does not answer" in body
    assert "Outage: Redis does not answer" in body and "Nothing needs restarting" in body
    restart(server)
    page = client.get("/inspector/status/")
    assert page.status_code == 200 and "Outage:" not in page.content.decode()


async def _until_the_socket_hears_the_layer(comm, session_id: str, *, timeout: float = 15) -> None:
    """A layer may need a moment after Redis is back (a pub/sub layer subscribes again about a
    second later, and what is published before that is gone): probe until the socket hears it."""
    from channels.layers import get_channel_layer

    from chat.turns import group_name

    layer = get_channel_layer()
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(*REDIS_DOWN):
            await layer.group_send(group_name(session_id), {"type": "chat.frame", "frame": {"type": "probe"}})
        # receive_nothing, not a receive timeout: a timeout cancels the application under test.
        if not await comm.receive_nothing(timeout=0.5):
            assert await comm.receive_json_from() == {"type": "probe"}
            return
    raise AssertionError(f"the socket heard nothing from the channel layer within {timeout}s")


async def _first_mutation_heard(comm, *, timeout: float = 15) -> str:
    """Write memories until the feed socket shows one (see _until_the_socket_hears_the_layer)."""
    deadline = asyncio.get_running_loop().time() + timeout
    n = 0
    while asyncio.get_running_loop().time() < deadline:
        n += 1
        await sync_to_async(add_memory)(
            text=f"User likes coffee number {n}", scope=Scope(user_id="u-1"), actor=EXTRACTOR
        )
        if not await comm.receive_nothing(timeout=0.5):
            return await comm.receive_from()
    raise AssertionError(f"no mutation reached the feed socket within {timeout}s")


async def test_a_chat_turn_during_an_outage_gets_a_clear_error_and_the_next_one_runs(server, offline):
    user, memory_user = await sync_to_async(make_user)("bob")
    cookie = await sync_to_async(session_cookie_for_user)(user)
    session_id = await sync_to_async(open_session)(memory_user, "s-blink")
    comm = communicator(session_id, cookie)
    connected, _ = await comm.connect()
    assert connected
    try:
        await sync_to_async(kill)(server)
        await comm.send_json_to({"type": "message", "text": "I live in Porto now.", "client_id": "c1"})
        error = await comm.receive_json_from(timeout=20)
        assert error == {
            "type": "error",
            "code": "unavailable",
            "message": UNAVAILABLE_MESSAGE,
            "client_id": "c1",
        }
        await sync_to_async(restart)(server)
        await _until_the_socket_hears_the_layer(comm, session_id)
        # The same socket, the same server process: the next turn runs.
        await comm.send_json_to({"type": "message", "text": "My dog is called Rex.", "client_id": "c2"})
        frames = [f for f in await frames_until(comm, "done", timeout=20) if f["type"] != "probe"]
        assert frames[0]["type"] == "turn_started" and frames[0]["client_id"] == "c2"
        assert frames[-1]["text"]
    finally:
        await comm.disconnect()


async def test_a_socket_opened_during_an_outage_is_closed_with_try_again(server, offline):
    user, memory_user = await sync_to_async(make_user)("carol")
    cookie = await sync_to_async(session_cookie_for_user)(user)
    session_id = await sync_to_async(open_session)(memory_user, "s-closed")
    await sync_to_async(kill)(server)
    try:
        comm = communicator(session_id, cookie)
        connected, _ = await comm.connect(timeout=20)
        assert connected, "accepted, then closed with a code the page retries on"
        closed = await comm.receive_output(timeout=20)
        assert closed == {"type": "websocket.close", "code": 1013}
    finally:
        await sync_to_async(restart)(server)


async def test_the_live_feed_survives_an_outage_and_resumes(server, caplog):
    from tests.test_inspector_feed import _cookie_for, _socket

    # The layer's outage lines are quiet for a minute after any earlier test's outage: start fresh.
    for name in ("channels_redis.pubsub", "channels_redis.core"):
        for log_filter in logging.getLogger(name).filters:
            if isinstance(log_filter, QuietOutageFilter):
                log_filter.reset()
    cookie = await _cookie_for("vera", "view_memories")
    comm = _socket(cookie)
    connected, _ = await comm.connect()
    assert connected
    try:
        await sync_to_async(add_memory)(text="User likes tea", scope=Scope(user_id="u-1"), actor=EXTRACTOR)
        assert "User likes tea" in await comm.receive_from(timeout=10)

        with caplog.at_level(logging.WARNING):
            await sync_to_async(kill)(server)
            await asyncio.sleep(3)  # the socket's layer receive fails and backs off meanwhile
            assert await comm.receive_nothing(timeout=0.2), "the socket is still open, and quiet"
            await sync_to_async(restart)(server)
            html = await _first_mutation_heard(comm)
        assert "User likes coffee" in html, "the same socket gets mutations again"
        outage_lines = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(outage_lines) == 1, "the outage is logged once, not once per retry"
    finally:
        await comm.disconnect()
