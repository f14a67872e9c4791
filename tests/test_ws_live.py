"""The chat socket on the real server (daphne as `make run` starts it, core/serve.py): frame limits
reach the client as an error frame or a documented close code, never as a dropped connection."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.chat_helpers import make_user, open_session, session_cookie_for_user

pytestmark = [pytest.mark.slow]


def _chat_socket(live_url: str) -> Any:
    user, memory_user = make_user("alice")
    session_id = open_session(memory_user)
    return connect(
        live_url.replace("http://", "ws://") + f"/ws/chat/{session_id}/",
        additional_headers={"Cookie": session_cookie_for_user(user), "Origin": live_url},
        max_size=None,
        open_timeout=20,
    )


def test_a_frame_over_the_chat_limit_gets_an_error_frame_and_one_over_the_servers_closes_with_1009(
    live_url: str,
) -> None:
    with _chat_socket(live_url) as socket:
        socket.send(json.dumps({"type": "message", "text": "x" * 200_000, "client_id": "c1"}))
        frame = json.loads(socket.recv(timeout=10))
        assert (frame["type"], frame["code"]) == ("error", "frame_too_large")
        socket.send(json.dumps({"type": "ping"}))
        assert json.loads(socket.recv(timeout=10)) == {"type": "pong"}, "still up"

        socket.send(json.dumps({"type": "message", "text": "x" * (1024 * 1024 + 1), "client_id": "c2"}))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert closed.value.rcvd is not None, "closed with a close frame, not a dropped connection (1006)"
    assert closed.value.rcvd.code == 1009


def test_an_unknown_path_and_a_foreign_port_are_refused_with_codes(live_url: str) -> None:
    user, _ = make_user("bob")
    cookie = session_cookie_for_user(user)
    base = live_url.replace("http://", "ws://")
    attempts = [
        (f"{base}/ws/nope/", live_url, 4404),
        (f"{base}/ws/chat/{'x' * 300}/", live_url, 4404),
        (f"{base}/ws/inspector/feed/", live_url, 4403),  # not staff
        (f"{base}/ws/chat/anything/", "http://127.0.0.1:9", 4403),  # same host, another port
    ]
    for url, origin, code in attempts:
        headers = {"Cookie": cookie, "Origin": origin}
        with (
            connect(url, additional_headers=headers, open_timeout=20) as socket,
            pytest.raises(ConnectionClosed) as closed,
        ):
            socket.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code, url
