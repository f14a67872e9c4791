"""Issue 16 in a real browser (daphne): the API's docs page runs under the Content-Security-Policy
(ninja's bundled Swagger UI, no CDN), and staff create an API key in the inspector, see it once,
and the page is accessible."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from tests.fixtures_browser import assert_accessible, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.shared_server]

PASSWORD = "pw-keeper-12345"
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${where}`);
});
"""


def _until(page: Any, expression: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout}s: {expression}"
        time.sleep(0.1)


def test_the_docs_page_lists_the_operations_under_the_policy(live_url: str, strict_page: Any) -> None:
    page = strict_page
    page.add_init_script(RECORD_VIOLATIONS)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    response = page.goto(f"{live_url}/api/v1/docs")
    assert response is not None and response.ok
    _until(page, "document.querySelectorAll('.opblock').length > 0")
    assert page.get_by_text("/api/v1/sessions/{session_id}", exact=True).count() > 0
    screenshot(page, "api-docs")
    violations = list(page.evaluate("window.__csp")) + console
    assert violations == [], violations
    assert all(url.startswith(live_url) for url in requested), "no CDN: every asset is served by Engram"


def test_staff_create_a_key_see_it_once_and_revoke_it(live_url: str, page: Any) -> None:
    user = get_user_model().objects.create_user("keeper", password=PASSWORD, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="manage_api_keys"))
    log_in(page, live_url, "keeper", PASSWORD)
    page.goto(f"{live_url}/")
    page.click("header nav >> text=API keys")
    page.wait_for_selector("h1:text('API keys')")
    assert_accessible(page, name="api-keys-empty")
    page.fill("#id_name", "support-bot")
    page.fill("#id_agent_id", "bot")
    page.fill("#id_namespaces", "ns1, ns2")
    page.click("button:text('Create key')")
    page.wait_for_selector("#new-key")
    raw = page.text_content("#new-key") or ""
    assert re.fullmatch(r"eng_[A-Za-z0-9_-]{40}", raw)
    assert_accessible(page, name="api-keys-created")
    screenshot(page, "api-keys-created")
    page.goto(f"{live_url}/inspector/api-keys/")
    assert raw not in page.content() and raw[:8] in page.content()
    page.click("button[aria-label='Revoke the key support-bot']")
    page.wait_for_selector(".flash >> text=it no longer opens anything")
    page.wait_for_selector("td[data-label=State] >> text=revoked")
    assert page.locator("button[aria-label='Revoke the key support-bot']").count() == 0
