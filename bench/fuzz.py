"""`make fuzz`: hostile WebSocket frames and HTTP requests against a live daphne and worker.

Two anonymous visitors each tell the chat a secret word (canaries), and a staff account exists.
Then, from visitor A's cookie: at least 10,000 WebSocket frames (bench/fuzz_inputs.py: junk,
nested, binary, oversized, wrong types, hostile texts that run real turns), and form/query bodies
and hostile ids on every chat and inspector URL, as A, as staff and with no cookie. Counted:
responses >= 500, sockets closed other than on purpose, frames with no answer, B's canary seen
by A (or A's by B), tracebacks in the servers' logs, and whether Redis, daphne and the worker are
still up at the end (RediSearch can segfault on some query shapes).

Registered in bench/__main__.py as "fuzz" (`python -m bench --only fuzz [--quick]`).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import random
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from bench.env import Progress, load_average, machine_info, machine_line, private_redis
from bench.fuzz_inputs import Frame, form_body, frame_makers, nasty_id, pick_frame, query_string
from bench.persona_ws import Browser, Servers, _user_id, servers, wait_for_extraction

SEED = 20261201
FRAME_TIMEOUT = 30.0
CANARY_A = "zorbleflax"
CANARY_B = "quintomberry"
STAFF_USERNAME = "fuzz-staff"


@dataclass(frozen=True)
class Size:
    frames: int
    requests: int


FULL = Size(frames=10_000, requests=3_000)
QUICK = Size(frames=600, requests=300)


@dataclass
class Tally:
    frames: Counter[str] = field(default_factory=Counter)  # frame kind -> count
    answers: Counter[str] = field(default_factory=Counter)  # answer type -> count
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected_closes: list[str] = field(default_factory=list)
    intended_closes: Counter[int] = field(default_factory=Counter)
    unanswered: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    refused_handshakes: Counter[str] = field(default_factory=Counter)

    def record_status(self, status: int, where: str) -> None:
        """An HTTP answer: counted by status, and every 5xx listed with where it came from."""
        self.statuses[status] += 1
        if status >= 500:
            self.server_errors.append(f"{where} -> {status}")


# --- A user's socket -------------------------------------------------------------------------------


class Socket:
    """Visitor A's chat socket; reopened after any close (the close itself is what gets counted)."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self.url = browser.base_url.replace("http://", "ws://") + f"/ws/chat/{session_id}/"
        self.origin = Origin(browser.base_url)
        self.cookie = browser.cookie_header()
        self.conn: ClientConnection | None = None

    def open(self) -> ClientConnection:
        if self.conn is None:
            self.conn = connect(
                self.url,
                origin=self.origin,
                additional_headers={"Cookie": self.cookie},
                open_timeout=30,
                max_size=None,  # the client must never be the one refusing a big answer
            )
        return self.conn

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _answer(conn: ClientConnection, expect: str) -> dict[str, Any]:
    """The frame that answers what was just sent: for a turn, its done (or error) frame."""
    deadline = time.monotonic() + FRAME_TIMEOUT
    while time.monotonic() < deadline:
        frame = json.loads(conn.recv(timeout=FRAME_TIMEOUT))
        kind = frame.get("type")
        if kind in {"error", "pong", "duplicate", "done"}:
            return dict(frame)
        if kind == "turn_started" and expect != "turn":
            return dict(frame)
    raise TimeoutError("no answer")


def send_frame(socket: Socket, frame: Frame, tally: Tally) -> dict[str, Any] | None:
    tally.frames[frame.kind] += 1
    conn = socket.open()
    try:
        conn.send(frame.payload)
        answer = _answer(conn, frame.expect)
    except ConnectionClosed as exc:
        socket.drop()
        code = exc.rcvd.code if exc.rcvd else 1006
        if frame.expect == "close" and code == 1009:
            tally.intended_closes[code] += 1
        else:
            tally.unexpected_closes.append(f"{frame.kind}: close {code} after {str(frame.payload)[:80]!r}")
        return None
    except TimeoutError:
        socket.drop()
        tally.unanswered.append(f"{frame.kind}: {str(frame.payload)[:80]!r}")
        return None
    tally.answers[f"{frame.kind} -> {answer.get('type')}:{answer.get('code', '')}".rstrip(":")] += 1
    return answer


def _texts_of(answer: dict[str, Any]) -> str:
    return json.dumps(answer, ensure_ascii=False)


def fuzz_frames(socket: Socket, count: int, tally: Tally, *, rng: random.Random, progress: Progress) -> None:
    from django.conf import settings

    makers = frame_makers(max_chars=settings.MESSAGE_MAX_CHARS, max_frame_bytes=settings.CHAT_MAX_FRAME_BYTES)
    for n in range(count):
        answer = send_frame(socket, pick_frame(rng, makers), tally)
        if answer is not None and CANARY_B in _texts_of(answer):
            tally.leaks.append(f"A's socket showed B's secret: {_texts_of(answer)[:200]}")
        if (n + 1) % 1000 == 0:
            progress(f"frames {n + 1:,}/{count:,}: {sum(tally.answers.values()):,} answered")
    socket.drop()


# --- HTTP ------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Client:
    """One identity's cookies; redirects are not followed (a 302 is an answer like any other)."""

    def __init__(self, base_url: str, cookie: str = "") -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)
        self.cookie = cookie

    def csrf(self) -> str:
        return next((c.value or "" for c in self.jar if c.name == "csrftoken"), "")

    def request(self, method: str, path: str, body: dict[str, str] | None = None) -> tuple[int, str]:
        data = None
        headers = {"Referer": self.base_url + "/"}
        cookies = [self.cookie] if self.cookie else []
        if method == "POST":
            # Lone surrogates go out as the (invalid) UTF-8 a broken client would send.
            data = urllib.parse.urlencode(body or {}, errors="surrogatepass").encode()
            headers["X-CSRFToken"] = self.csrf()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if cookies:
            headers["Cookie"] = "; ".join(cookies)
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="", errors="surrogatepass")


def _paths(rng: random.Random, ids: dict[str, str]) -> tuple[str, str]:
    """(method, path) on a chat or inspector URL, with a real id or a hostile one."""
    some = lambda name: ids[name] if rng.random() < 0.3 else nasty_id(rng)  # noqa: E731
    templates = [
        ("GET", "/chat/"),
        ("POST", "/chat/new"),
        ("GET", "/chat/{session}/"),
        ("GET", "/chat/{session}/messages"),
        ("POST", "/chat/{session}/rename"),
        ("POST", "/chat/{session}/delete"),
        ("GET", "/chat/me/memories/"),
        ("POST", "/chat/me/memories/{memory}/forget"),
        ("GET", "/inspector/"),
        ("GET", "/inspector/users/"),
        ("GET", "/inspector/users/{user}/"),
        ("GET", "/inspector/users/{user}/export.json"),
        ("POST", "/inspector/users/{user}/erase"),
        ("POST", "/inspector/users/{user}/sandbox"),
        ("GET", "/inspector/sessions/{session}/"),
        ("GET", "/inspector/memories/{memory}/"),
        ("POST", "/inspector/memories/{memory}/edit"),
        ("POST", "/inspector/memories/{memory}/delete"),
        ("POST", "/inspector/memories/{memory}/undelete"),
        ("POST", "/inspector/memories/{memory}/restore-version"),
        ("POST", "/inspector/memories/{memory}/ttl"),
        ("POST", "/inspector/memories/{memory}/pin"),
        ("POST", "/inspector/memories/{memory}/lock"),
        ("GET", "/inspector/receipts/{memory}/"),
        ("POST", "/inspector/dead-letters/{memory}/retry"),
        ("POST", "/accounts/login/"),
        ("POST", "/accounts/signup/"),
        ("GET", "/healthz"),
        ("GET", "/{junk}"),
    ]
    method, template = rng.choice(templates)
    path = template.format(
        session=_q(some("session")), memory=_q(some("memory")), user=_q(some("user")), junk=_q(nasty_id(rng))
    )
    return method, path


def fuzz_http(
    clients: dict[str, Client],
    count: int,
    ids: dict[str, str],
    tally: Tally,
    *,
    rng: random.Random,
    progress: Progress,
) -> None:
    names = sorted(clients)
    for n in range(count):
        who = rng.choice(names)
        method, path = _paths(rng, ids)
        if method == "GET" and rng.random() < 0.6:
            path += "?" + urllib.parse.urlencode(query_string(rng), errors="surrogatepass")
        body = form_body(rng) if method == "POST" else None
        status, text = clients[who].request(method, path, body)
        tally.record_status(status, f"{who} {method} {path[:120]}")
        if who == "visitor_a" and CANARY_B in text:
            tally.leaks.append(f"A saw B's secret at {method} {path[:120]}")
        if who == "visitor_b" and CANARY_A in text:
            tally.leaks.append(f"B saw A's secret at {method} {path[:120]}")
        if (n + 1) % 500 == 0:
            progress(f"requests {n + 1:,}/{count:,}: {tally.statuses.most_common(4)}")


def fuzz_handshakes(
    base_url: str, cookie: str, tally: Tally, *, rng: random.Random, count: int = 200
) -> None:
    """Hostile session ids and unknown paths on the socket: refused cleanly, never a server error."""
    ws = base_url.replace("http://", "ws://")
    for _ in range(count):
        path = rng.choice(["/ws/chat/{id}/", "/ws/{id}/", "/ws/inspector/{id}/", "/{id}"]).format(
            id=_q(nasty_id(rng))
        )
        try:
            with connect(
                ws + path, origin=Origin(base_url), additional_headers={"Cookie": cookie}, open_timeout=15
            ) as conn:
                conn.recv(timeout=5)
            tally.refused_handshakes["accepted and answered"] += 1
        except InvalidStatus as exc:
            status = exc.response.status_code
            tally.refused_handshakes[f"HTTP {status}"] += 1
            if status >= 500:
                tally.server_errors.append(f"handshake {path[:100]} -> HTTP {status}")
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            tally.refused_handshakes[f"close {code}"] += 1
            if code in {1006, 1011}:
                tally.unexpected_closes.append(f"handshake {path[:100]}: close {code}")
        except TimeoutError:
            tally.refused_handshakes["open, silent"] += 1
        except (InvalidHandshake, OSError) as exc:
            # The server dropped the connection instead of answering the handshake.
            tally.refused_handshakes["dropped"] += 1
            tally.unexpected_closes.append(f"handshake {path[:100]}: {type(exc).__name__}")


# --- Setup and checks ------------------------------------------------------------------------------


def _visitor(base_url: str, secret: str) -> tuple[Browser, str]:
    browser = Browser(base_url)
    session_id = browser.new_chat()
    done = browser.chat(session_id, [f"My secret word is {secret}, please remember it."])
    if done[0].get("type") != "done":
        raise RuntimeError(f"the visitor's first message failed: {done[0]}")
    return browser, session_id


def _staff_cookie() -> str:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.create_superuser(STAFF_USERNAME, password=None)
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def _memory_saying(user_id: str, word: str) -> str:
    from memory.query import MemoryFilter
    from memory.selectors import list_memories

    page = list_memories(filter=MemoryFilter.build(user_id=user_id), limit=100)
    return next((m.id for m in page.memories if word in m.text), "none")


def cross_user_checks(servers_: Servers, a: Browser, b: Browser, tally: Tally) -> dict[str, bool]:
    """After the storm: each visitor asks for their secret and reads their pages; no other's shows.
    Returns whether each got their own secret back (so "no leak" is not just "nothing stored")."""
    recalled = {}
    for me, own_secret, other_secret, label in ((a, CANARY_A, CANARY_B, "A"), (b, CANARY_B, CANARY_A, "B")):
        session_id = me.new_chat()
        answers = me.chat(session_id, ["What is my secret word?", "What do you remember about me?"])
        recalled[label] = any(own_secret in _texts_of(done) for done in answers)
        for done in answers:
            if other_secret in _texts_of(done):
                tally.leaks.append(f"{label}'s question was answered with the other's secret")
        client = Client(servers_.url, me.cookie_header())
        for path in ("/chat/", "/chat/me/memories/", f"/chat/{session_id}/messages"):
            status, text = client.request("GET", path)
            tally.record_status(status, f"{label} GET {path}")
            if other_secret in text:
                tally.leaks.append(f"{label} saw the other's secret at {path}")
    return recalled


def _still_up(servers_: Servers) -> dict[str, bool]:
    from core.redis_client import get_redis

    try:
        redis_up = bool(get_redis().ping())
    except Exception:
        redis_up = False
    return {
        "redis": redis_up,
        "daphne": servers_.processes[0].poll() is None,
        "worker": servers_.processes[1].poll() is None,
    }


def _log_tracebacks(servers_: Servers) -> list[str]:
    found = []
    for log in servers_.logs:
        lines = log.read_text(errors="replace").splitlines()
        for n, line in enumerate(lines):
            if line.startswith("Traceback"):
                tail = next((x for x in lines[n + 1 : n + 80] if x and not x.startswith(" ")), "")
                found.append(f"{log.name}: {tail[:200]}")
    return found


def _dead_letters() -> int:
    from memory.extraction import queue

    return int(queue.queue_health().get("dead_letters", 0))


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = bool(getattr(args, "quick", False))
    size = QUICK if quick else FULL
    progress = Progress("fuzz")
    rng = random.Random(SEED)
    tally = Tally()
    result: dict[str, Any] = {
        "bench": "fuzz",
        "quick": quick,
        "seed": SEED,
        "machine": machine_info(),
        "load_average_start": load_average(),
    }
    with (
        tempfile.TemporaryDirectory(prefix="engram-bench-fuzz-") as tmp,
        private_redis(Path(tmp) / "redis") as redis_url,
        servers(redis_url=redis_url, work_dir=Path(tmp) / "s") as live,
    ):
        from bench.redis_stats import versions
        from core.redis_client import get_redis

        result["versions"] = versions(get_redis())
        progress("two visitors tell the chat their secret word")
        a, a_session = _visitor(live.url, CANARY_A)
        b, _b_session = _visitor(live.url, CANARY_B)
        # The real ids the requests aim at are a second chat's (staff may rightly edit or delete
        # them): the secrets stay, so the control at the end can find them.
        decoy_session = a.new_chat()
        a.chat(decoy_session, ["My cat is called Whiskers and she sleeps all day."])
        wait_for_extraction()
        ids = {
            "session": decoy_session,
            "user": _user_id(a),
            "memory": _memory_saying(_user_id(a), "Whiskers"),
        }
        staff = Client(live.url, _staff_cookie())
        clients = {
            "visitor_a": Client(live.url, a.cookie_header()),
            "visitor_b": Client(live.url, b.cookie_header()),
            "staff": staff,
            "nobody": Client(live.url),
        }
        for client in clients.values():
            client.request("GET", "/chat/")  # sets the CSRF cookie, as the page does
        progress(f"{size.frames:,} WebSocket frames on visitor A's chat")
        fuzz_frames(Socket(a, a_session), size.frames, tally, rng=rng, progress=progress)
        progress("hostile socket paths and ids")
        fuzz_handshakes(live.url, a.cookie_header(), tally, rng=rng, count=200 if not quick else 40)
        progress(f"{size.requests:,} HTTP requests (visitor A, visitor B, staff, no cookie)")
        fuzz_http(clients, size.requests, ids, tally, rng=rng, progress=progress)
        progress("waiting for the worker, then the cross-user checks")
        try:
            wait_for_extraction()
            drained = True
        except RuntimeError:
            drained = False
        result["own_secret_recalled"] = cross_user_checks(live, a, b, tally)
        result["still_up"] = _still_up(live)
        result["queue_drained"] = drained
        result["dead_letters"] = _dead_letters()
        result["log_tracebacks"] = _log_tracebacks(live)
    result.update(_summary(tally))
    result["load_average_end"] = load_average()
    result["duration_s"] = round(progress.elapsed, 1)
    result["all_pass"] = (
        result["responses_5xx"] == 0
        and not result["unexpected_closes"]
        and not result["unanswered"]
        and not result["leaks"]
        and all(result["still_up"].values())
        and not result["log_tracebacks"]
        and all(result["own_secret_recalled"].values())
    )
    progress(
        f"5xx {result['responses_5xx']}, unexpected closes {len(result['unexpected_closes'])}, leaks "
        f"{len(result['leaks'])}, tracebacks {len(result['log_tracebacks'])}, up {result['still_up']}"
    )
    return result


def _summary(tally: Tally) -> dict[str, Any]:
    return {
        "frames_sent": sum(tally.frames.values()),
        "frames_by_kind": dict(tally.frames.most_common()),
        "answers": dict(tally.answers.most_common()),
        "http_requests": sum(tally.statuses.values()),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        # HTTP answers and socket handshakes alike: each 5xx is listed once in server_errors.
        "responses_5xx": len(tally.server_errors),
        "server_errors": tally.server_errors[:50],
        "intended_closes": {str(k): v for k, v in tally.intended_closes.items()},
        "unexpected_closes": tally.unexpected_closes[:50],
        "unanswered": tally.unanswered[:50],
        "handshakes": dict(tally.refused_handshakes),
        "leaks": tally.leaks[:50],
    }


def markdown(result: dict[str, Any]) -> str:
    verdict = "✅ pass" if result["all_pass"] else "❌ fail"
    up = ", ".join(f"{k} {'up' if v else 'DOWN'}" for k, v in result["still_up"].items())
    lines = [
        "## Fuzzing (hostile input against a live server)",
        "",
        machine_line(result),
        "",
        f"Seed {result['seed']}, {result['duration_s']:.0f} s. daphne and one worker on a private embedded "
        "Redis; two anonymous visitors with secret words, one staff account. "
        f"**{verdict}**.",
        "",
        "| Check | Count |",
        "|---|---|",
        f"| WebSocket frames sent (visitor A) | {result['frames_sent']:,} |",
        f"| HTTP requests (A, B, staff, no cookie) | {result['http_requests']:,} |",
        f"| Socket paths/ids tried | {sum(result['handshakes'].values()):,} |",
        f"| Responses >= 500 | {result['responses_5xx']} |",
        f"| Sockets closed other than on purpose | {len(result['unexpected_closes'])} |",
        f"| Sockets closed on purpose (frame over 1 MiB, 1009) | {sum(result['intended_closes'].values())} |",
        f"| Frames with no answer in {FRAME_TIMEOUT:.0f} s | {len(result['unanswered'])} |",
        f"| Cross-user results (a secret seen by the other visitor) | {len(result['leaks'])} |",
        "| Each visitor's own secret recalled afterwards (the control) | "
        + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in result["own_secret_recalled"].items())
        + " |",
        f"| Tracebacks in the servers' logs | {len(result['log_tracebacks'])} |",
        f"| At the end | {up}; queue drained: {result['queue_drained']}; "
        f"dead letters {result['dead_letters']} |",
        "",
        "HTTP statuses: " + ", ".join(f"{k}: {v:,}" for k, v in result["statuses"].items()) + ". Socket "
        "paths: " + ", ".join(f"{k}: {v}" for k, v in result["handshakes"].items()) + ".",
        "",
    ]
    for title, key in (
        ("Server errors", "server_errors"),
        ("Unexpected closes", "unexpected_closes"),
        ("Unanswered", "unanswered"),
        ("Leaks", "leaks"),
        ("Tracebacks", "log_tracebacks"),
    ):
        if result[key]:
            lines += [f"{title} (first {len(result[key])}):", "", *[f"- `{x}`" for x in result[key][:15]], ""]
    return "\n".join(lines)
