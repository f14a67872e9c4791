"""The memory demo beside a chat, in a real browser and offline (no model): a presenter turns it on,
chats, and sees per turn what was recalled (score, admitting rule), then what the worker learned
in the background, without a reload; a reload keeps the story; it fits a phone's width."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memory.worker import Worker
from tests.chat_helpers import make_user
from tests.extraction_helpers import drain
from tests.fixtures_browser import ROOT, log_in, new_chat, say, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def offline(settings: Any) -> None:
    """The worker runs in the test process with the rules extractor (the server is offline too)."""
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    settings.EXTRACTION_DEBOUNCE_SECONDS = 0


@pytest.fixture
def live_server_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The server as in development (DEBUG on, the default), or with `"production"` as in
    production: DEBUG off, a secret key and collected static files."""
    if getattr(request, "param", "debug") != "production":
        return {}
    env = {"DEBUG": "0", "SECRET_KEY": "demo-test-" + "k" * 50, "ENGRAM_STATE_DIR": str(tmp_path / "state")}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return env


def _newest_turn(page: Any, query: str) -> Any:
    page.wait_for_selector(f".demo-recalls > .demo-turn:first-child .demo-query-text:text-is('{query}')")
    return page.locator(".demo-recalls > .demo-turn").first


def _assert_panel_accessible(page: Any) -> None:
    """axe-core finds nothing serious in the panel (the rest of the page is checked elsewhere)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, context={"include": [["#demo-panel"], ["#demo-toggle"]]})
    violations = results.response["violations"]
    serious = [v["id"] for v in violations if v["impact"] in ("serious", "critical")]
    assert serious == [], violations


def test_a_presenter_watches_recall_and_learning_live(live_url: str, page: Any, offline: None) -> None:
    make_user("sam", staff=True)
    log_in(page, live_url, "sam", "pw-sam-12345")
    new_chat(page, live_url)
    assert page.locator("#demo-panel").is_hidden(), "off until the presenter turns it on"
    page.click("#demo-toggle")
    page.wait_for_selector("#demo-panel.is-live")
    assert page.get_attribute("#demo-toggle", "aria-pressed") == "true"
    page.evaluate("window.__sameDocument = true")

    say(page, "I live in Lisbon.")
    first = _newest_turn(page, "I live in Lisbon.")
    assert "Nothing recalled" in first.text_content()

    drain(Worker(worker_id="demo-worker"))
    learned = page.wait_for_selector(
        ".demo-changes .demo-decision-add >> text=User lives in Lisbon", timeout=15_000
    )
    line = learned.evaluate("node => node.closest('.demo-change').textContent")
    assert "add" in line and "by extractor demo-worker" in line, line

    say(page, "Where do I live?")
    turn = _newest_turn(page, "Where do I live?")
    hit = turn.locator(".demo-hits .demo-hit", has_text="User lives in Lisbon")
    assert hit.count() == 1
    why = hit.locator(".demo-why").text_content() or ""
    score = float(hit.locator(".demo-score").text_content().split()[-1])
    assert score > 0 and ">= cut" in why and "x best" in why, why

    say(page, "I live in Lisbon.")
    drain(Worker(worker_id="demo-worker"))
    page.wait_for_selector(".demo-changes .demo-decision-no-op >> text=User lives in Lisbon", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True, "everything arrived without a reload"
    screenshot(page, "demo-panel-1280")
    _assert_panel_accessible(page)
    box, chat = page.locator("#demo-panel").bounding_box(), page.locator("#chat").bounding_box()
    assert box["x"] >= chat["x"] + chat["width"], "beside the conversation on a laptop"

    # A reload keeps the demo on and shows the last turns' recalls and the changes again.
    page.reload()
    page.wait_for_selector("#demo-panel.is-live")
    turn = _newest_turn(page, "I live in Lisbon.")
    assert page.locator(".demo-recalls > .demo-turn").count() == 3
    earlier = page.locator(".demo-recalls > .demo-turn").nth(1)
    assert "User lives in Lisbon" in earlier.locator(".demo-hits").text_content()
    assert page.locator(".demo-changes .demo-decision-add", has_text="User lives in Lisbon").count() == 1

    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling on a phone"
    box, composer = page.locator("#demo-panel").bounding_box(), page.locator("#composer").bounding_box()
    assert box["y"] >= composer["y"] + composer["height"] - 1, "stacked below the conversation"
    screenshot(page, "demo-panel-390")
    _assert_panel_accessible(page)

    page.click("#demo-toggle")
    assert page.locator("#demo-panel").is_hidden()
    page.reload()
    assert page.locator("#demo-panel").is_hidden(), "off stays off"


def test_memory_text_is_never_markup_in_the_panel(live_url: str, page: Any, offline: None) -> None:
    make_user("sam", staff=True)
    log_in(page, live_url, "sam", "pw-sam-12345")
    new_chat(page, live_url)
    page.click("#demo-toggle")
    page.wait_for_selector("#demo-panel.is-live")
    say(page, "My favourite tag is <b>bold</b> <img src=x onerror=alert(1)>")
    drain(Worker(worker_id="demo-worker"))
    page.wait_for_selector(".demo-changes .demo-change")
    assert page.locator("#demo-panel b, #demo-panel img").count() == 0
    assert "<b>bold</b>" in page.locator(".demo-recalls").text_content()


_DEMO_SOCKET_CLOSE = """path => new Promise(resolve => {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
  ws.onclose = event => resolve(event.code);
})"""


@pytest.mark.parametrize("live_server_env", ["production"], indirect=True)
def test_with_debug_off_only_staff_get_the_demo(live_url: str, page: Any, offline: None) -> None:
    make_user("alice")
    make_user("sam", staff=True)
    log_in(page, live_url, "alice", "pw-alice-12345")
    new_chat(page, live_url)
    assert page.locator("#demo-toggle").count() == 0, "no toggle for a user who is not staff"
    assert page.locator("#demo-panel").count() == 0
    session_id = page.url.rstrip("/").split("/")[-1]
    assert page.evaluate(_DEMO_SOCKET_CLOSE, f"/ws/chat/{session_id}/demo/") == 4403
    screenshot(page, "demo-no-toggle-for-users")

    page.context.clear_cookies()
    log_in(page, live_url, "sam", "pw-sam-12345")
    new_chat(page, live_url)
    page.click("#demo-toggle")
    page.wait_for_selector("#demo-panel.is-live")
    say(page, "I live in Lisbon.")
    _newest_turn(page, "I live in Lisbon.")
    staff_chat = page.url.rstrip("/").split("/")[-1]
    assert staff_chat != session_id
    assert page.evaluate(_DEMO_SOCKET_CLOSE, f"/ws/chat/{session_id}/demo/") == 4403, "alice's chat is hers"
