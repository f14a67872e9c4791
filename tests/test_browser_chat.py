"""The chat in a real browser: log in, chat, watch the reply stream, inspect memories used, reload."""

import pytest

from chat.identity import account_memory_id
from memory.services import add_memory
from memory.types import Scope
from tests.chat_helpers import make_user
from tests.fixtures_browser import log_in, screenshot
from tests.llm_server import Reply
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
    assert "final" in used.text_content()
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
