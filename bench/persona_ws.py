"""The persona suite as a browser drives it: a real daphne and a real worker, HTTP for the pages,
the chat WebSocket for every message.

Each persona is an anonymous visitor (a Django session cookie, as the site gives one). For each chat
the runner moves the servers' clock to the chat's day (bench/shifted_clock.py), asks for a new chat
(POST /chat/new with the CSRF token, as the "New chat" button does), opens /ws/chat/<id>/ with the
page's Origin and cookie, sends each message and waits for its `done` frame, then waits until the
worker has extracted everything. The questions come in one new chat a day after the last one.

With `model` set, the servers talk to a scripted OpenAI-compatible server (bench/persona_model.py):
it extracts the suite's own statements (a model that extracts perfectly) and answers a question by
reading back the memories of its prompt. The offline run is what users without a key get.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import time_machine
from websockets.sync.client import connect
from websockets.typing import Origin

from bench.env import BASE_DIR
from bench.persona_data import Persona, Suite
from bench.persona_grading import PersonaOutcome

SERVER_START_TIMEOUT = 120.0
FRAME_TIMEOUT = 60.0
DRAIN_TIMEOUT = 120.0


@dataclass
class Servers:
    url: str
    clock_file: Path
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def set_clock(self, epoch: float) -> None:
        self.clock_file.write_text(repr(epoch))
        time.sleep(0.15)  # the servers poll the file every 20 ms

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            for log in self.logs
        )


def _environment(*, redis_url: str, db_path: str, state_dir: Path, llm_url: str) -> dict[str, str]:
    from django.conf import settings

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "DATABASE_PATH": db_path,
        "ENGRAM_STATE_DIR": str(state_dir),
        "SECRET_KEY": settings.SECRET_KEY,  # the visitors' sessions are signed by this process
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CHAT_RATE_LIMIT_PER_MINUTE": "1000",
        "ANON_VISITORS_PER_IP_PER_HOUR": "100000",  # every persona is a new visitor from 127.0.0.1
        # A persona types its messages one after another; extract each chat soon after it ends.
        "EXTRACTION_DEBOUNCE_SECONDS": "0.3",
        "LLM_MAX_RETRIES": "0",
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "persona-key" if llm_url else "",
    }
    return env


def _wait_for_health(url: str, processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"{log.name} exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"the server did not answer /healthz in {SERVER_START_TIMEOUT:.0f}s")


@contextmanager
def servers(*, redis_url: str, work_dir: Path, llm_url: str = "") -> Iterator[Servers]:
    """daphne and one worker, both under the shifted clock, on a fresh migrated SQLite database."""
    from bench.chat_load import temp_database
    from core.embedded_redis import free_port

    work_dir.mkdir(parents=True, exist_ok=True)
    clock_file = work_dir / "clock"
    clock_file.write_text("")
    with temp_database(work_dir / "db.sqlite3") as db_path:
        env = _environment(redis_url=redis_url, db_path=db_path, state_dir=work_dir, llm_url=llm_url)
        port = free_port()
        wrapper = [sys.executable, "-m", "bench.shifted_clock", str(clock_file)]
        commands = {
            "daphne.log": [
                *wrapper,
                "-m",
                "core.serve",  # daphne as `make run` starts it
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "config.asgi:application",
            ],
            "worker.log": [*wrapper, "manage.py", "memory_worker", "--worker-id", "persona-worker"],
        }
        processes: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []
        try:
            for name, command in commands.items():
                log = work_dir / name
                with log.open("wb") as out:
                    processes.append(
                        subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
                    )
                logs.append(log)
            url = f"http://127.0.0.1:{port}"
            _wait_for_health(url, processes, logs)
            yield Servers(url, clock_file, processes, logs)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


class Browser:
    """One visitor's cookies, and the requests a browser makes on the chat pages."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _cookie(self, name: str) -> str:
        return next((c.value or "" for c in self.jar if c.name == name), "")

    def new_chat(self) -> str:
        """What the "New chat" button does: GET the chat list (cookies, CSRF token), POST /chat/new."""
        with self.opener.open(f"{self.base_url}/chat/", timeout=30) as page:
            html = page.read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        if token is None:
            raise RuntimeError("the chat page has no CSRF token")
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token[1]}).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.base_url}/chat/new", data=body, headers={"Referer": f"{self.base_url}/chat/"}
        )
        with self.opener.open(request, timeout=30) as response:
            final = response.geturl()
        match = re.search(r"/chat/([^/]+)/$", final)
        if match is None:
            raise RuntimeError(f"'New chat' did not land on a chat page: {final}")
        return match[1]

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    def chat(self, session_id: str, messages: list[str]) -> list[dict[str, Any]]:
        """Send each message on the chat's WebSocket and wait for its reply; the done frames (or errors)."""
        ws_url = self.base_url.replace("http://", "ws://") + f"/ws/chat/{session_id}/"
        outcomes: list[dict[str, Any]] = []
        with connect(
            ws_url,
            origin=Origin(self.base_url),  # what a browser on the chat page sends
            additional_headers={"Cookie": self.cookie_header()},
            open_timeout=30,
        ) as socket:
            for n, text in enumerate(messages):
                socket.send(
                    json.dumps({"type": "message", "text": text, "client_id": f"m{n}-{time.time_ns()}"})
                )
                outcomes.append(_until_done(socket))
        return outcomes


def _until_done(socket: Any) -> dict[str, Any]:
    deadline = time.monotonic() + FRAME_TIMEOUT
    while time.monotonic() < deadline:
        frame = json.loads(socket.recv(timeout=FRAME_TIMEOUT))
        if frame.get("type") == "done":
            return dict(frame)
        if frame.get("type") in {"error", "duplicate"}:
            return {"type": "error", "text": "", "error": frame}
    return {"type": "error", "text": "", "error": "no done frame in time"}


def wait_for_extraction(timeout: float = DRAIN_TIMEOUT) -> None:
    """Until the worker has acknowledged every queued turn (pending and lag both 0)."""
    from memory.extraction import queue

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = queue.queue_health()
        if health["pending"] == 0 and health["lag"] == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the worker did not finish in {timeout:.0f}s: {queue.queue_health()}")


def _fact_memories(user_id: str) -> list[str]:
    from bench.persona_inprocess import _fact_memories as facts

    return facts(user_id)


def _user_id(browser: Browser) -> str:
    """The memory user id of the visitor's cookie (the site keeps it in the Django session)."""
    from django.contrib.sessions.backends.db import SessionStore

    from chat.identity import ANON_SESSION_KEY, anonymous_memory_id

    store = SessionStore(session_key=browser._cookie("sessionid"))
    return anonymous_memory_id(str(store[ANON_SESSION_KEY]))


def run_persona(
    servers_: Servers, persona: Persona, *, answer_text: Callable[[dict[str, Any]], str]
) -> PersonaOutcome:
    browser = Browser(servers_.url)
    errors: list[str] = []
    for number, chat in enumerate(persona.chats):
        servers_.set_clock(chat.at)
        session_id = browser.new_chat()
        for n, done in enumerate(browser.chat(session_id, list(chat.messages))):
            if done.get("type") != "done":
                errors.append(f"{persona.id} chat {number} message {n}: {done.get('error')}")
        try:
            wait_for_extraction()
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{servers_.log_tail()}") from exc
    servers_.set_clock(persona.asked_at)
    session_id = browser.new_chat()
    questions = [q.text for f in persona.facts for q in f.questions]
    asked = [*questions, *persona.broad_questions]
    replies = browser.chat(session_id, asked)
    # The worker extracts the questions' chat too; let it finish before the clock moves on (a turn
    # queued "in the future" would wait for its debounce forever once the clock goes back).
    wait_for_extraction()
    answers: dict[str, str] = {}
    broad: dict[str, str] = {}
    for text, done in zip(asked, replies, strict=True):
        if done.get("type") != "done":
            errors.append(f"{persona.id} question {text!r}: {done.get('error')}")
        (broad if text in persona.broad_questions else answers)[text] = answer_text(done)
    # Read as of the day the questions were asked (memories expire on the servers' shifted clock).
    with time_machine.travel(persona.asked_at, tick=True):
        facts = _fact_memories(_user_id(browser))
    return PersonaOutcome(persona, facts, answers, broad, errors)


def run_suite(
    suite: Suite, servers_: Servers, *, progress: Callable[[str], None] = print
) -> list[PersonaOutcome]:
    outcomes = []
    for persona in suite.personas:
        outcomes.append(run_persona(servers_, persona, answer_text=lambda done: str(done.get("text", ""))))
        progress(f"{suite.name} {persona.id}: {len(outcomes)}/{len(suite.personas)}")
    return outcomes
