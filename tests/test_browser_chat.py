"""The chat in a real browser: log in, chat, watch the reply stream, inspect memories used, reload."""

import json
import re
from typing import Any

import pytest

from chat.identity import account_memory_id
from devtools.llm_server import Reply
from memory.services import add_memory
from memory.types import Scope
from tests.chat_helpers import make_user
from tests.fixtures_browser import log_in, screenshot
from tests.memory_helpers import USER

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def live_server_env(llm_server):
    return {"OPENAI_BASE_URL": llm_server.base_url, "OPENAI_API_KEY": "k", "LLM_MAX_RETRIES": "0"}


def test_chat_two_turns_with_streaming_memories_and_history(live_url, page, llm_server):
    user, _ = make_user("alice")
    add_memory(
        text="Alice's dog is a beagle named Rex", scope=Scope(user_id=account_memory_id(user.pk)), actor=USER
    )
    llm_server.enqueue(
        Reply("Rex is a beagle, and a very good boy.", delay_between_chunks=0.15),
        Reply("You are welcome!"),
    )
    log_in(page, live_url, "alice", "pw-alice-12345")
    page.goto(f"{live_url}/chat/")
    page.click("text=New chat")
    page.wait_for_selector("#composer")
    page.wait_for_function("document.getElementById('status').textContent === ''")

    page.fill("#message", "What breed is my dog?")
    page.keyboard.press("Enter")
    bubble = page.locator(".msg-assistant .msg-text").first
    # Streaming: the bubble shows part of the reply before all of it.
    page.wait_for_function(
        "() => { const t = document.querySelector('.msg-assistant .msg-text'); "
        "return t && t.textContent.length > 0 && t.textContent !== 'Rex is a beagle, and a very good boy.'; }"
    )
    partial = bubble.text_content()
    assert partial and partial != "Rex is a beagle, and a very good boy."
    page.wait_for_selector(".memories-used")
    assert bubble.text_content() == "Rex is a beagle, and a very good boy."
    page.click(".memories-used summary")
    used = page.locator(".memories-used li").first
    assert "Alice's dog is a beagle named Rex" in used.text_content()
    assert "final" not in used.text_content(), "scores are for staff only (issue 14)"
    screenshot(page, "chat-memories-used")

    page.fill("#message", "Thanks <b>a lot</b>!")
    page.click("#composer button")
    page.wait_for_selector("text=You are welcome!")
    assert page.locator(".msg-user .msg-text").nth(1).text_content() == "Thanks <b>a lot</b>!"
    assert page.locator(".msg-user b").count() == 0, "user text is never rendered as HTML"

    page.reload()
    texts = page.locator(".msg .msg-text").all_text_contents()
    assert texts == [
        "What breed is my dog?",
        "Rex is a beagle, and a very good boy.",
        "Thanks <b>a lot</b>!",
        "You are welcome!",
    ]
    screenshot(page, "chat-after-reload")


def test_a_second_user_cannot_see_the_first_users_memories(live_url, page):
    alice, _ = make_user("alice")
    make_user("bob")
    add_memory(text="Alice's secret recipe", scope=Scope(user_id=account_memory_id(alice.pk)), actor=USER)
    log_in(page, live_url, "bob", "pw-bob-12345")
    page.goto(f"{live_url}/chat/me/memories/")
    assert "Alice's secret recipe" not in page.content()
    assert "Nothing yet" in page.content()
    assert page.goto(f"{live_url}/inspector/").status == 403


@pytest.mark.parametrize("live_server_env", [{"CHAT_STALL_RESYNC_SECONDS": "1"}])
def test_a_turn_whose_frames_are_lost_shows_its_reply_from_the_history(live_url, page, live_server_env):
    """Every frame after turn_started is dropped between server and tab (as the Redis channel layer
    can): the tab notices the running turn went quiet and shows the saved reply anyway."""
    make_user("alice")
    dropped: list[str] = []

    def lose_frames_after_turn_started(ws: Any) -> None:
        server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            if json.loads(message).get("type") in {"delta", "done"}:
                dropped.append(json.loads(message)["type"])
            else:
                ws.send(message)

        server.on_message(to_page)

    log_in(page, live_url, "alice", "pw-alice-12345")
    page.route_web_socket(re.compile(r"/ws/chat/"), lose_frames_after_turn_started)
    page.goto(f"{live_url}/chat/")
    page.click("text=New chat")
    page.wait_for_function("document.getElementById('status').textContent === ''")
    page.fill("#message", "I live in Lisbon")
    page.keyboard.press("Enter")
    # The first turn of a fresh server loads the embedding model: ~13 s on a busy 2-core machine.
    page.wait_for_selector(".msg-assistant .msg-text:not(:empty)", timeout=45_000)
    assert "done" in dropped, "the reply reached the page through the history, not a frame"
    texts = page.locator(".msg .msg-text").all_text_contents()
    assert texts[0] == "I live in Lisbon" and texts[1].strip()
    page.wait_for_function("document.getElementById('status').textContent === ''")


def test_signing_out_in_another_tab_says_so_in_the_chat_and_stops_reconnecting(live_url, page):
    """The chat tab's socket is closed with 4401 when its login ends; the page says why in plain
    words and does not reconnect (a refused socket used to look like a lost connection forever)."""
    make_user("alice")
    log_in(page, live_url, "alice", "pw-alice-12345")
    page.goto(f"{live_url}/chat/")
    page.click("text=New chat")
    page.wait_for_function("document.getElementById('status').textContent === ''")
    sockets: list[Any] = []
    page.on("websocket", lambda ws: sockets.append(ws))

    other_tab = page.context.new_page()  # same browser, same login
    other_tab.goto(f"{live_url}/chat/")
    other_tab.click("text=Log out alice")
    other_tab.wait_for_load_state()

    page.wait_for_selector("#status a", timeout=10_000)
    status = page.locator("#status")
    assert status.text_content().startswith("You are signed out. Sign in again to continue.")
    assert status.locator("a").get_attribute("href").startswith("/accounts/login/?next=%2Fchat%2F")
    assert page.locator("#message").is_disabled()
    page.wait_for_timeout(3000)  # longer than the first reconnect delays (0.5 s, 1 s)
    assert sockets == [], "no reconnect attempts after the refusal"
    assert "reconnecting" not in status.text_content()
    screenshot(page, "chat-signed-out")


def test_a_message_to_a_chat_deleted_in_another_tab_says_the_chat_is_gone(live_url, page):
    make_user("alice")
    log_in(page, live_url, "alice", "pw-alice-12345")
    page.goto(f"{live_url}/chat/")
    page.click("text=New chat")
    page.wait_for_function("document.getElementById('status').textContent === ''")

    other_tab = page.context.new_page()
    other_tab.goto(f"{live_url}/chat/")
    other_tab.click(".session-actions summary")
    other_tab.click("form[action$='/delete'] button")
    other_tab.wait_for_selector("text=Chat deleted.")

    page.fill("#message", "Are you still there?")
    page.keyboard.press("Enter")
    alert = page.wait_for_selector(".msg-error")
    assert alert.text_content() == (
        "This chat was deleted (in another tab or window), so your message was not saved."
    )
    page.wait_for_selector("#status a")
    assert page.locator("#status").text_content().startswith("This chat no longer exists")
    assert page.locator("#message").is_disabled()
