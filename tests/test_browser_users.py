"""Issue 14, end users, in a real browser (the server offline: no model configured): where login
and logout land, chat titles and paging, the memories page in the user's words, forget with
confirmation and undo (also without JS), the "Memories used" link, offline replies and the home page."""

from typing import Any

import pytest

from memory import working
from memory.services import add_memory, set_pinned
from memory.types import Scope
from tests.chat_helpers import make_user
from tests.fixtures_browser import log_in, new_chat, say, screenshot
from tests.memory_helpers import ANYONE, STAFF, USER

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.shared_server]


@pytest.fixture(scope="module")
def shared_server_env() -> dict[str, str]:
    return {"OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""}


def _no_js_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def test_login_lands_on_the_chats_and_logout_on_the_product(live_url, page):
    make_user("alice")
    page.goto(f"{live_url}/accounts/login/")
    assert page.locator(".account-form label", has_text="Username").count() == 1
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "wrong-password")
    page.click("form.stack button[type=submit]")
    assert "correct username and password" in str(page.locator(".form-errors").text_content())
    screenshot(page, "users-login-error")
    page.fill("input[name=password]", "pw-alice-12345")
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{live_url}/chat/")
    assert page.locator("h1").text_content() == "Your chats"

    page.click("text=Log out alice")
    page.wait_for_url(f"{live_url}/accounts/login/")
    assert page.locator(".flash", has_text="You are signed out.").count() == 1
    assert page.locator("text=Logged out").count() == 0
    screenshot(page, "users-signed-out")

    page.goto(f"{live_url}/accounts/login/?next=/chat/me/memories/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "pw-alice-12345")
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{live_url}/chat/me/memories/")

    page.click("text=Log out alice")
    page.goto(f"{live_url}/accounts/signup/")
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password1]", "a-long-pass-9876")
    page.fill("input[name=password2]", "another-pass-9876")
    page.click("form.stack button[type=submit]")
    assert page.locator(".field-error", has_text="password fields didn").count() == 1
    assert page.locator(".account-form label", has_text="Password confirmation").count() == 1
    screenshot(page, "users-signup-error")


def test_a_chat_is_titled_by_its_first_message_renamed_and_the_list_paged(live_url, page, browser):
    _user, memory_user = make_user("alice")
    log_in(page, live_url, "alice", "pw-alice-12345")
    new_chat(page, live_url)
    assert page.locator("#chat-title-text").text_content() == "New chat"
    first = say(page, "Hi! Call me Priya. I'm vegetarian and I'm allergic to peanuts.")
    # Offline mode is said once, by the page, not in every reply; nothing contradicts what was learned.
    assert page.locator("#offline-notice").count() == 1
    second = say(page, "What do you know about me? I play the cello.")
    for reply in (first, second):
        assert "Offline mode" not in reply and "I don't" not in reply, reply
        assert "I'll remember this" in reply, reply
    assert page.locator("text=Offline mode").count() == 1
    screenshot(page, "users-offline-chat")
    # Named live, as the first message arrived.
    assert (
        page.locator("#chat-title-text").text_content()
        == "Hi! Call me Priya. I'm vegetarian and I'm allergic to…"
    )
    assert page.title().startswith("Hi! Call me Priya.")

    # Rename in place (htmx), then check the list.
    page.click(".chat-title summary")
    page.fill(".chat-title input[name=title]", "About me\u0007")
    page.click(".chat-title button[type=submit]")
    page.wait_for_function("document.getElementById('chat-title-text').textContent === 'About me'")
    page.goto(f"{live_url}/chat/")
    assert page.locator(".session-title").all_text_contents() == ["About me"]

    for n in range(24):
        working.ensure_session(session_id=f"old-{n:02d}", user_id=memory_user, title=f"Old chat {n}")
    page.goto(f"{live_url}/chat/")
    titles = page.locator(".session-title").all_text_contents()
    assert len(titles) == 20 and titles[0] == "Old chat 23"
    assert "Page 1 of 2" in str(page.locator(".pager").text_content())
    screenshot(page, "users-chat-list-paged")
    page.click("text=Older chats")
    page.wait_for_url(f"{live_url}/chat/?page=2")
    assert page.locator(".session-title").all_text_contents() == [
        "Old chat 3",
        "Old chat 2",
        "Old chat 1",
        "Old chat 0",
        "About me",
    ]
    # A blank title is refused in place, with the reason, and the old one kept.
    row = page.locator(".session-list li", has_text="Old chat 3")
    row.locator(".rename summary").click()
    row.locator("input[name=title]").fill(" ")
    row.locator("button[type=submit]", has_text="Save").click()
    page.wait_for_selector(".field-error")
    assert "Give the chat a title." in str(page.locator(".field-error").text_content())
    assert page.locator(".session-title", has_text="Old chat 3").count() == 1

    # Without JS the same form posts and the list comes back renamed.
    plain = _no_js_page(browser)
    log_in(plain, live_url, "alice", "pw-alice-12345")
    plain.goto(f"{live_url}/chat/?page=2")
    row = plain.locator(".session-list li", has_text="Old chat 2")
    row.locator(".rename summary").click()
    row.locator("input[name=title]").fill("Renamed without JS")
    row.locator("button[type=submit]", has_text="Save").click()
    plain.wait_for_url(f"{live_url}/chat/?page=2")
    assert plain.locator(".session-title", has_text="Renamed without JS").count() == 1
    plain.context.close()


def test_memories_page_speaks_to_the_user_and_forget_can_be_undone(live_url, page, browser):
    _user, memory_user = make_user("alice")
    scope = Scope(user_id=memory_user)
    name = add_memory(text="User's name is Priya", scope=scope, actor=USER, topics=["identity"])
    set_pinned(owner=ANYONE, memory_id=name.id, pinned=True, actor=STAFF)
    add_memory(text="The user likes jazz", scope=scope, actor=USER, topics=["preferences"])
    add_memory(text="User has a dog named Rex", scope=scope, actor=USER, topics=["pets"])
    log_in(page, live_url, "alice", "pw-alice-12345")
    page.goto(f"{live_url}/chat/me/memories/")
    text = str(page.locator("main").text_content())
    assert "Your name is Priya." in text and "You like jazz." in text and "You have a dog named Rex." in text
    for word in ("User's", "semantic", "episodic", "final", "vector", "pinned"):
        assert word not in text, word
    assert page.locator("h2", has_text="About you").count() == 1

    jazz = page.locator(".memory-list li", has_text="You like jazz.")
    jazz.locator(".forget summary").click()
    confirm = jazz.locator(".forget-confirm")
    assert confirm.is_visible()
    assert "stops using this" in str(confirm.text_content()) and "7 days" in str(confirm.text_content())
    screenshot(page, "users-forget-confirm")
    confirm.locator("button", has_text="Yes, forget it").click()
    page.wait_for_selector(".undo-box")
    assert "Forgotten: “You like jazz.”" in str(page.locator(".undo-box").text_content())
    assert page.locator(".memory-list li", has_text="You like jazz.").count() == 0
    screenshot(page, "users-forgotten-undo")
    page.click(".undo-box button")
    page.wait_for_selector("li.highlighted")
    assert "You like jazz." in str(page.locator("li.highlighted").text_content())
    assert page.locator(".flash", has_text="Restored").count() == 1

    # Without JS: the confirmation is a disclosure and Undo a plain form.
    plain = _no_js_page(browser)
    log_in(plain, live_url, "alice", "pw-alice-12345")
    plain.goto(f"{live_url}/chat/me/memories/")
    rex = plain.locator(".memory-list li", has_text="You have a dog named Rex.")
    rex.locator(".forget summary").click()
    rex.locator("button", has_text="Yes, forget it").click()
    plain.wait_for_selector(".undo-box")
    plain.click(".undo-box button")
    plain.wait_for_selector("li.highlighted")
    assert "You have a dog named Rex." in str(plain.locator("li.highlighted").text_content())
    plain.context.close()


def test_memories_used_links_to_the_memory_highlighted_and_in_view(live_url, page):
    _user, memory_user = make_user("alice")
    scope = Scope(user_id=memory_user)
    for n in range(30):
        add_memory(text=f"User speaks language number {n}", scope=scope, actor=USER, topics=["identity"])
    rex = add_memory(text="User's dog is called Rex", scope=scope, actor=USER, topics=["pets"])
    log_in(page, live_url, "alice", "pw-alice-12345")
    new_chat(page, live_url)
    reply = say(page, "What is my dog called?")
    assert "Rex" in reply
    page.click(".memories-used summary")
    link = page.locator(".memories-used a", has_text="Your dog is called Rex.")
    assert "final" not in str(page.locator(".memories-used").text_content()), "no scores for users"
    link.click()
    page.wait_for_url(f"{live_url}/chat/me/memories/?memory={rex.id}#memory-{rex.id}")
    marked = page.locator("li.highlighted")
    assert marked.count() == 1 and marked.get_attribute("id") == f"memory-{rex.id}"
    assert marked.get_attribute("aria-current") == "true"
    box = marked.bounding_box()
    assert box is not None and 0 <= box["y"] < 900, "scrolled into view"
    screenshot(page, "users-memory-highlighted")
    # After a reload the history renders the link the same way.
    page.go_back()
    page.reload()
    page.click(".memories-used summary")
    href = page.locator(".memories-used a").first.get_attribute("href")
    assert href == f"/chat/me/memories/?memory={rex.id}#memory-{rex.id}"
    assert page.locator(".memories-used .scores").count() == 0


def test_the_home_page_shows_the_inspector_card_to_staff_only(live_url, page):
    make_user("alice")
    make_user("boss", staff=True)
    page.goto(f"{live_url}/")
    assert page.locator(".cards", has_text="Memory inspector").count() == 0
    log_in(page, live_url, "alice", "pw-alice-12345")
    page.goto(f"{live_url}/")
    assert page.locator(".cards", has_text="Memory inspector").count() == 0
    screenshot(page, "users-home")
    page.click("text=Log out alice")
    log_in(page, live_url, "boss", "pw-boss-12345")
    page.goto(f"{live_url}/")
    page.click(".cards >> text=Memory inspector")
    page.wait_for_url(f"{live_url}/inspector/**")
