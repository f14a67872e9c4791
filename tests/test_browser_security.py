"""Security in a real browser (daphne, so the ASGI paths): the Content-Security-Policy (the chat
streams a reply over its WebSocket, the inspector's pages run htmx and the live feed, the memories
page renders, all with no `securitypolicyviolation` event and no CSP console message), and the
login lockout shown on the login form."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from chat.identity import account_memory_id
from devtools.llm_server import Reply
from memory.services import add_memory
from memory.types import Scope
from tests.fixtures_browser import log_in, screenshot
from tests.memory_helpers import USER

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "pw-support-12345"
# Runs before any page script (Playwright injects it outside the page's CSP) and keeps every
# violation the page reports, so a page can be checked before the next navigation wipes it.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${where}`);
});
"""


@pytest.fixture
def live_server_env(llm_server: Any) -> dict[str, str]:
    return {"OPENAI_BASE_URL": llm_server.base_url, "OPENAI_API_KEY": "k", "LLM_MAX_RETRIES": "0"}


class Violations:
    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def of_this_page(self) -> list[str]:
        return list(self.page.evaluate("window.__csp || []")) + self.console


def _until(page: Any, expression: str, timeout: float = 15) -> None:
    """wait_for_function without it: Playwright compiles that predicate with eval, which the policy
    refuses (page.evaluate goes through DevTools and is not subject to it)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout}s: {expression}"
        time.sleep(0.1)


def _visit(page: Any, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.ok, url
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy, url


def test_pages_run_under_the_policy_without_a_violation(
    live_url: str, strict_page: Any, llm_server: Any
) -> None:
    page = strict_page
    user = get_user_model().objects.create_user("support", password=PASSWORD, is_staff=True)
    for codename in ("view_memories", "change_memories"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="memory", codename=codename))
    memory_user = account_memory_id(user.pk)
    memory = add_memory(
        text="Support's dog is a beagle named Rex", scope=Scope(user_id=memory_user), actor=USER
    )
    llm_server.enqueue(Reply("Rex is a beagle, and a very good boy.", delay_between_chunks=0.1))
    seen = Violations(page)

    _visit(page, f"{live_url}/accounts/login/")
    log_in(page, live_url, "support", PASSWORD)
    assert seen.of_this_page() == []

    # The chat: its script, its WebSocket (connect-src 'self' must cover ws://) and a streamed reply.
    _visit(page, f"{live_url}/chat/")
    page.click("text=New chat")
    page.wait_for_selector("#composer")
    _until(page, "document.getElementById('status').textContent === ''")
    page.fill("#message", "What breed is my dog?")
    page.keyboard.press("Enter")
    page.wait_for_selector(".memories-used")
    assert (
        page.locator(".msg-assistant .msg-text").first.text_content()
        == "Rex is a beagle, and a very good boy."
    )
    assert seen.of_this_page() == [], "chat page"
    screenshot(page, "csp-chat")

    _visit(page, f"{live_url}/chat/me/memories/")
    page.wait_for_selector("text=named Rex")
    assert seen.of_this_page() == [], "memories page"

    # The inspector: htmx swaps and the live feed's WebSocket.
    _visit(page, f"{live_url}/inspector/")
    page.wait_for_selector("[data-feed-status].is-live")
    assert seen.of_this_page() == [], "inspector overview"
    screenshot(page, "csp-inspector")
    _visit(page, f"{live_url}/inspector/users/{memory_user}/")
    page.wait_for_selector("[data-feed-status].is-live")
    page.select_option("select[name=type]", "semantic")
    page.click("form.filters button[type=submit]")
    _until(page, "location.search.includes('type=semantic')")
    page.wait_for_selector("#memory-results >> text=named Rex")
    assert seen.of_this_page() == [], "inspector user page"
    _visit(page, f"{live_url}/inspector/memories/{memory.id}/")
    page.click("#pin-button")
    page.wait_for_selector("#pin-button[aria-pressed=true]")
    assert seen.of_this_page() == [], "inspector memory page"
    _visit(page, f"{live_url}/inspector/status/")
    page.wait_for_selector("text=System status")
    assert seen.of_this_page() == [], "status page"
    screenshot(page, "csp-status")
    _visit(page, f"{live_url}/")
    assert seen.of_this_page() == [], "home page"

    # The recorder does see a violation: an inline script is refused and reported.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1'; "
        "document.body.append(s); }"
    )
    _until(page, "window.__csp.length > 0")
    assert page.evaluate("window.ran") is None
    assert any("script-src" in v for v in seen.of_this_page())


def test_a_locked_out_login_is_explained_on_the_login_form(live_url: str, strict_page: Any) -> None:
    page = strict_page
    get_user_model().objects.create_user("support", password=PASSWORD)
    for attempt in range(5):
        page.goto(f"{live_url}/accounts/login/")
        page.fill("input[name=username]", "support")
        page.fill("input[name=password]", f"wrong-{attempt}")
        page.click("form.stack button[type=submit]")
        page.wait_for_selector("form.stack")
    page.wait_for_selector("[role=alert] >> text=logging in is paused for 15 minutes")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_selector("[role=alert] >> text=logging in is paused for 15 minutes")
    assert page.input_value("input[name=username]") == "support"
    assert page.locator("text=Log out").count() == 0
    screenshot(page, "login-locked-out")
