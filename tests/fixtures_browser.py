"""Browser tests: the real server (daphne, in a subprocess) driven by Debian's chromium via Playwright.

The server shares the test database (a SQLite file, see `django_db_modify_db_settings`) and the test
Redis, so tests create users and memories directly and then look at them through the browser. Use
the `transactional_db` fixture so rows are committed where the server can see them.
"""

from __future__ import annotations

import os
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

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(*, redis_url: str, db_path: str, env: dict[str, str], log_dir: Path) -> LiveServer:
    port = free_port()
    log = log_dir / f"daphne-{port}.log"
    environment = {
        **os.environ,
        "DEBUG": "1",
        "REDIS_URL": redis_url,
        "DATABASE_PATH": db_path,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "core.serve", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
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
                return LiveServer(url, process, log)
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
    transactional_db: None, redis_server: EmbeddedRedis, live_server_env: dict[str, str], tmp_path: Path
) -> Iterator[str]:
    from django.conf import settings

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
    page.set_default_timeout(15_000)
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
