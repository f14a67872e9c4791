"""Browser tests: the real server (daphne, in a subprocess) driven by Debian's chromium via Playwright.

The server shares the test database (a SQLite file, see `django_db_modify_db_settings`) and the test
Redis, so tests create users and memories directly and then look at them through the browser. Use
the `transactional_db` fixture so rows are committed where the server can see them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.embedded_redis import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A file-backed test database, so the server subprocess sees what tests write."""
    from django.conf import settings

    path = tmp_path_factory.mktemp("db") / "test.sqlite3"
    test_settings: dict[str, Any] = settings.DATABASES["default"].setdefault("TEST", {})  # type: ignore[arg-type,assignment]
    test_settings["NAME"] = str(path)


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    reset_file: Path | None = None

    def forget_caches(self, *, timeout: float = 15) -> None:
        """Make a shared server (tests/live_server.py) forget what it cached about Redis, which
        the suite has just emptied, and wait until it has."""
        assert self.reset_file is not None, "only a server from tests.live_server can forget"
        before = int(self.reset_file.read_text()) if self.reset_file.exists() else 0
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not (self.reset_file.exists() and int(self.reset_file.read_text()) > before):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the shared server did not reset: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        # daphne stops serving at once, but the interpreter's exit with torch loaded took 8-13 s
        # on a loaded machine (most of the old 10 s wait, for every live-server test); nothing
        # the tests look at happens in it, so after a short grace the process is killed.
        self.process.terminate()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_server(
    *, redis_url: str, db_path: str, env: dict[str, str], log_dir: Path, shared: bool = False
) -> LiveServer:
    """daphne on a free port; `shared` runs it through tests/live_server.py, which can be told to
    forget its caches between tests (`LiveServer.forget_caches`)."""
    port = free_port()
    log = log_dir / f"daphne-{port}.log"
    reset_file = log_dir / f"daphne-{port}.resets" if shared else None
    environment = {
        **os.environ,
        "DEBUG": "1",
        "REDIS_URL": redis_url,
        "DATABASE_PATH": db_path,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        **({"ENGRAM_TEST_RESET_FILE": str(reset_file)} if reset_file else {}),
        **env,
    }
    module = "tests.live_server" if shared else "core.serve"
    process = subprocess.Popen(
        [sys.executable, "-m", module, "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=environment,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):  # noqa: S310 - loopback
                return LiveServer(url, process, log, reset_file)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"daphne did not answer in 60s: {log.read_text()[-2000:]}")


@pytest.fixture
def live_server_env() -> dict[str, str]:
    """Extra environment for the server; tests override this fixture (e.g. to point at the LLM server)."""
    return {}


@pytest.fixture
def live_url(
    request: pytest.FixtureRequest,
    transactional_db: None,
    redis_server: EmbeddedRedis,
    live_server_env: dict[str, str],
    tmp_path: Path,
) -> Iterator[str]:
    """A daphne of its own for the test, or, in a module marked `shared_server`, the module's one
    (`shared_live_url`)."""
    from django.conf import settings

    if request.node.get_closest_marker("shared_server"):
        assert not live_server_env, "a shared server's environment is the module's `shared_server_env`"
        yield request.getfixturevalue("shared_live_url")
        return
    server = start_server(
        redis_url=redis_server.url,
        db_path=settings.DATABASES["default"]["NAME"],
        env=live_server_env,
        log_dir=tmp_path,
    )
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_server_env() -> dict[str, str]:
    """Extra environment for a module's shared server (`shared_live_url`); modules override it."""
    return {}


@pytest.fixture(scope="module")
def shared_server(
    django_db_setup: None,
    redis_server: EmbeddedRedis,
    shared_server_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    from django.conf import settings

    server = start_server(
        redis_url=redis_server.url,
        db_path=settings.DATABASES["default"]["NAME"],
        env=shared_server_env,
        log_dir=tmp_path_factory.mktemp("shared-daphne"),
        shared=True,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def shared_live_url(transactional_db: None, _empty_redis: Any, shared_server: LiveServer) -> str:
    """One daphne for the whole module (starting one costs seconds), as fresh for each test as its
    own would be: the database and Redis are emptied before the test, and the server forgets what
    it cached about them. A module opts in with `pytest.mark.shared_server` (then `live_url` is
    this); modules whose tests need their own environment (a scripted LLM server) do not."""
    shared_server.forget_caches()
    return shared_server.url


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """One chromium per test: Playwright's sync API keeps an event loop on this thread while it runs,
    which must be gone again before the next async test starts its own."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # The ORM calls tests make on this thread are plain synchronous calls despite that loop.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@contextmanager
def browser_page(browser: Any, name: str, *, bypass_csp: bool) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=bypass_csp)
    page = context.new_page()
    # Generous: under xdist two servers and two browsers share the cores with whatever else runs.
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-final.png"), full_page=True)
        context.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page that ignores the Content-Security-Policy: Playwright's `wait_for_function` compiles
    its predicate with eval in the page, which the policy refuses. tests/test_browser_security.py
    checks the policy itself, with `strict_page`."""
    with browser_page(browser, request.node.name, bypass_csp=True) as page:
        yield page


@pytest.fixture
def strict_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page under the server's Content-Security-Policy (use no `wait_for_function` on it)."""
    with browser_page(browser, request.node.name, bypass_csp=False) as page:
        yield page


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page: Any, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{base_url}/**")


# What "no serious violations" means in the acceptance: axe's two highest impacts.
SERIOUS_IMPACTS = ("serious", "critical")
DESKTOP_SIZE = {"width": 1280, "height": 800}
PHONE_SIZE = {"width": 390, "height": 844}
UNDECIDABLE_RULES = {"color-contrast", "color-contrast-enhanced", "link-in-text-block"}


def axe_violations(page: Any, *, name: str) -> list[dict[str, Any]]:
    """Run axe-core (the axe.min.js bundled by axe-playwright-python) on the page as it is now;
    the full result goes to test-artifacts/axe-<name>.json. Returns the serious and critical ones."""
    from axe_playwright_python.sync_playwright import Axe

    response = Axe().run(page).response
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"axe-{name}.json").write_text(json.dumps(response, indent=2))
    found = [v for v in response["violations"] if v.get("impact") in SERIOUS_IMPACTS]
    # "Incomplete" is axe unsure, mostly because it cannot see the whole page: an aria-describedby
    # naming an id that is not there yet, or an aria-label where it is not allowed, is still wrong
    # once the page is complete. Only colour checks it could not compute (text over a pseudo
    # element or a scrolled panel) are left to the screenshots.
    found += [
        {**v, "help": f"{v['help']} (axe was not sure)"}
        for v in response["incomplete"]
        if v.get("impact") in SERIOUS_IMPACTS and v["id"] not in UNDECIDABLE_RULES
    ]
    return found


def describe_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:8]:
            summary = " ".join(str(node.get("failureSummary", "")).split())
            lines.append(f"    {' '.join(map(str, node['target']))}: {summary:.200}")
        if len(violation["nodes"]) > 8:
            lines.append(f"    … and {len(violation['nodes']) - 8} more")
    return "\n".join(lines)


def assert_accessible(page: Any, *, name: str) -> None:
    """Fail with a readable list when axe finds a serious or critical violation on the page."""
    violations = axe_violations(page, name=name)
    if violations:
        # Raised, not asserted: pytest would add the whole axe result to the readable list.
        listing = describe_violations(violations)
        raise AssertionError(f"{name} ({page.url}): accessibility violations\n{listing}")


def screenshots_at_sizes(page: Any, name: str) -> None:
    """Full-page screenshots at laptop (1280x800) and phone (390x844) widths, as
    test-artifacts/<name>-1280.png and <name>-390.png; the page keeps the viewport it had."""
    ARTIFACTS.mkdir(exist_ok=True)
    before = page.viewport_size
    for size in (DESKTOP_SIZE, PHONE_SIZE):
        page.set_viewport_size(size)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{size['width']}.png"), full_page=True)
    if before:
        page.set_viewport_size(before)


def assert_unique_ids(page: Any, *, name: str) -> None:
    """No id twice on a page (axe 4.12 no longer checks this): a label or aria reference to a
    repeated id names the wrong element."""
    repeated = page.evaluate(
        """() => {
            const seen = {};
            for (const e of document.querySelectorAll('[id]')) seen[e.id] = (seen[e.id] || 0) + 1;
            return Object.keys(seen).filter(id => seen[id] > 1);
        }"""
    )
    if repeated:
        raise AssertionError(f"{name}: ids used more than once: {repeated}")


FOCUS_STATE = """() => {
    const e = document.activeElement;
    if (!e || e === document.body) return null;
    const again = window.__focusSeen.has(e);
    window.__focusSeen.add(e);
    const style = getComputedStyle(e);
    const box = e.getBoundingClientRect();
    const label = (e.getAttribute('aria-label') || e.textContent || e.getAttribute('name') || '')
        .trim().slice(0, 40);
    return {
        again,
        element: `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''} "${label}"`,
        ring: (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0)
            || style.boxShadow !== 'none',
        // The browser scrolls a focused element into view: one outside the window is hidden.
        shown: box.width > 0 && box.height > 0 && style.visibility !== 'hidden'
            && box.bottom > 0 && box.right > 0 && box.top < innerHeight && box.left < innerWidth,
    };
}"""


def assert_focus_visible(page: Any, *, name: str, max_stops: int = 80) -> int:
    """Tab through the page as a keyboard user does: every stop must be on screen and show a focus
    ring (an outline or a box shadow). Returns how many stops there were."""
    problems = []
    stops = 0
    # Start where a keyboard user starts: the top of the page, nothing focused (a field may have
    # autofocus; clicking an empty corner moves the starting point of Tab there).
    page.evaluate(
        "() => { window.scrollTo(0, 0); window.__focusSeen = new WeakSet(); document.activeElement?.blur(); }"
    )
    page.mouse.click(1, 1)
    for _ in range(max_stops):
        page.keyboard.press("Tab")
        state = page.evaluate(FOCUS_STATE)
        if state is None or state["again"]:
            break
        stops += 1
        if not (state["ring"] and state["shown"]):
            problem = "no focus ring" if state["shown"] else "focus is off screen"
            problems.append(f"{state['element']}: {problem}")
    if problems:
        raise AssertionError(f"{name}: keyboard focus cannot be seen\n" + "\n".join(problems))
    return stops


def new_chat(page: Any, base_url: str) -> None:
    """Open a new chat from the chat list and wait for its socket."""
    page.goto(f"{base_url}/chat/")
    page.click("text=New chat")
    page.wait_for_selector("#composer")
    page.wait_for_function("document.getElementById('status').textContent === ''")


def say(page: Any, text: str, *, timeout_ms: float = 60_000) -> str:
    """Send a message as a user does and wait for the whole reply; returns its text. The default
    wait is long because the server's first turn loads the embedding model."""
    before = page.locator(".msg-assistant .msg-text").count()
    page.fill("#message", text)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "n => { const bubbles = document.querySelectorAll('.msg-assistant .msg-text'); "
        "return bubbles.length > n && bubbles[bubbles.length - 1].textContent.length > 0 "
        "&& document.getElementById('status').textContent === ''; }",
        arg=before,
        timeout=timeout_ms,
    )
    return str(page.locator(".msg-assistant .msg-text").last.text_content())
