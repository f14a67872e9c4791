"""Several daphne processes on one port (SERVER_PROCESSES, core/listeners.py): the launcher supervises
each one, and the sockets of one chat, or of the live feed, on different processes all see the
same frames."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from websockets.sync.client import ClientConnection, connect

from core.embedded_redis import EmbeddedRedis, free_port
from core.listeners import serve_args, server_sockets
from memory.services import add_memory
from memory.types import Scope
from tests.chat_helpers import make_user, open_session, session_cookie_for_user
from tests.memory_helpers import EXTRACTOR
from tests.test_launcher import (
    ROOT,
    _descendants,
    _pids,
    _running,
    _start,
    _supervised_env,
    _wait,
    _wait_for_health,
)

pytestmark = [pytest.mark.slow]

SERVERS = 2


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the LISTEN sockets on `port` (IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            found.add(fields[9])
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def test_n_server_processes_share_one_port_and_each_is_started_again(tmp_path: Path) -> None:
    env, redis_port, http_port, pid_file = _supervised_env(tmp_path, limit=5, servers=SERVERS)
    health = f"http://127.0.0.1:{http_port}/healthz"
    launcher = _start(env)
    try:
        _wait_for_health(health, launcher, redis_port)
        first = _pids(pid_file)
        servers = [first[f"daphne-{n}"] for n in range(1, SERVERS + 1)]
        assert len(set(servers)) == SERVERS and set(servers) <= _descendants(launcher.pid)
        listening = _listening_inodes(http_port)
        assert len(listening) == SERVERS, "one SO_REUSEPORT socket per process"
        for pid in servers:
            assert len(_socket_inodes(pid) & listening) == 1, "each process listens on its own socket"

        os.kill(servers[1], signal.SIGKILL)
        # Its socket went with it: the other process answers every connection meanwhile.
        _wait(lambda: not _running(servers[1]), "daphne-2 gone", launcher)
        # A connection the kernel queued on the dying socket in its last instant is reset (measured:
        # the first request right after a SIGKILL); from then on the other process takes them all.
        _wait(lambda: _answers(health), "the other process answering", launcher)
        for _ in range(10):
            with urllib.request.urlopen(health, timeout=10) as response:
                assert json.loads(response.read()) == {"status": "ok"}
        after = _wait(
            lambda: (p := _pids(pid_file))["daphne-2"] != servers[1] and _running(p["daphne-2"]) and p,
            "a new daphne-2",
            launcher,
        )
        assert after["restarts"]["daphne-2"] == 1 and after["daphne-1"] == servers[0]
        again = _wait(lambda: len(_listening_inodes(http_port)) == SERVERS, "two sockets again", launcher)
        assert again and len(_socket_inodes(after["daphne-2"]) & _listening_inodes(http_port)) == 1
        _wait_for_health(health, launcher, redis_port)
    finally:
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, output
    assert "2 server processes" in output
    assert (
        "daphne-2 exited (killed by SIGKILL); starting it again (restart 1 of at most 5 a minute)" in output
    )


def test_the_launcher_says_plainly_when_the_port_is_taken(tmp_path: Path) -> None:
    env, _redis_port, http_port, pid_file = _supervised_env(tmp_path, limit=5, servers=SERVERS)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", http_port))
        taken.listen()
        launcher = _start(env)
        output, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 1
    assert f"cannot listen on 127.0.0.1:{http_port}" in output and "set HTTP_PORT to a free port" in output
    assert not pid_file.exists()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (a test's own URL)
            return json.loads(response.read()) == {"status": "ok"}
    except (ConnectionError, urllib.error.URLError):
        return False


# --- Sockets on different processes ----------------------------------------------------------------


@dataclass
class ServerGroup:
    url: str
    port: int
    processes: list[subprocess.Popen[bytes]]

    def pid_of(self, conn: ClientConnection | socket.socket) -> int:
        """The server process holding the other end of a client connection (from /proc)."""
        sock = conn.socket if isinstance(conn, ClientConnection) else conn
        client_port = sock.getsockname()[1]
        inode = ""
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == self.port and int(remote.split(":")[1], 16) == client_port:
                inode = fields[9]
        for process in self.processes if inode not in ("", "0") else ():
            if inode in _socket_inodes(process.pid):
                return process.pid
        raise AssertionError(f"no server process holds the connection from port {client_port}")


@pytest.fixture
def server_group(
    transactional_db: None, redis_server: EmbeddedRedis, tmp_path: Path
) -> Iterator[ServerGroup]:
    """SERVER_PROCESSES daphne processes on one port, as the launcher starts them, on the test
    database and Redis."""
    from django.conf import settings

    port = free_port()
    env = {
        **os.environ,
        "DEBUG": "1",
        "REDIS_URL": redis_server.url,
        "DATABASE_PATH": str(settings.DATABASES["default"]["NAME"]),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    sockets = server_sockets(host="127.0.0.1", port=port, count=SERVERS)
    with ExitStack() as stack:
        processes = []
        for n, sock in enumerate(sockets):
            stack.callback(sock.close)
            log = stack.enter_context((tmp_path / f"daphne-{n}.log").open("wb"))
            process = subprocess.Popen(
                serve_args(sock),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
            )
            stack.callback(_stop, process)
            processes.append(process)
        group = ServerGroup(f"http://127.0.0.1:{port}", port, processes)
        for process in processes:
            _wait_until_serving(group, process, tmp_path)
        yield group


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _wait_until_serving(group: ServerGroup, process: subprocess.Popen[bytes], logs: Path) -> None:
    """Up once it accepts connections on its socket (the kernel picks the socket: probe until one
    lands on this process and is accepted) and answers /healthz."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "\n".join(p.read_text()[-2000:] for p in logs.glob("daphne-*.log"))
        try:
            probe = socket.create_connection(("127.0.0.1", group.port), timeout=2)
        except OSError:  # nothing listens yet
            time.sleep(0.2)
            continue
        with probe:
            for _ in range(10):
                try:
                    if group.pid_of(probe) == process.pid:
                        with urllib.request.urlopen(f"{group.url}/healthz", timeout=5):  # noqa: S310
                            return
                    break
                except AssertionError:  # not accepted yet
                    time.sleep(0.05)
                except OSError:
                    break
        time.sleep(0.1)
    raise AssertionError("a server process did not answer within 90 s")


def _sockets_on_both(group: ServerGroup, url: str, headers: dict[str, str]) -> tuple[Any, Any]:
    """Open sockets until two are held by different processes (the kernel picks by a hash)."""
    seen: dict[int, ClientConnection] = {}
    extra = []
    for _ in range(40):
        conn = connect(url, additional_headers=headers, open_timeout=20)
        pid = group.pid_of(conn)
        if pid in seen:
            extra.append(conn)
        else:
            seen[pid] = conn
        if len(seen) == 2:
            break
    for conn in extra:
        with conn:  # closed at once
            pass
    assert len(seen) == 2, "40 connections all landed on one process"
    first, second = seen.values()
    return first, second


def _frames_until_done(conn: ClientConnection) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = json.loads(conn.recv(timeout=30))
        frames.append(frame)
        if frame["type"] in {"done", "error"}:
            return frames


def test_two_tabs_of_one_chat_on_different_processes_both_see_the_whole_reply(
    server_group: ServerGroup,
) -> None:
    user, memory_user = make_user("alice")
    session_id = open_session(memory_user)
    url = server_group.url.replace("http://", "ws://") + f"/ws/chat/{session_id}/"
    headers = {"Cookie": session_cookie_for_user(user), "Origin": server_group.url}
    sender, other = _sockets_on_both(server_group, url, headers)
    with sender, other:
        assert server_group.pid_of(sender) != server_group.pid_of(other)
        sender.send(
            json.dumps({"type": "message", "text": "I live in Lisbon and I like tea", "client_id": "c1"})
        )
        here, there = _frames_until_done(sender), _frames_until_done(other)
    assert here[-1]["type"] == "done", here
    assert [f["type"] for f in here] == [f["type"] for f in there]
    assert here == there, "the tab on the other process gets the same frames, in order"
    deltas = "".join(f["text"] for f in there if f["type"] == "delta")
    assert deltas and deltas.strip() == here[-1]["text"].strip()


async def test_the_live_feed_reaches_staff_sockets_on_every_process(server_group: ServerGroup) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    def staff_cookie() -> str:
        user = get_user_model().objects.create_user("vera", password="pw-vera-12345", is_staff=True)
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="memory", codename="view_memories")
        )
        return session_cookie_for_user(user)

    cookie = await sync_to_async(staff_cookie)()
    url = server_group.url.replace("http://", "ws://") + "/ws/inspector/feed/"
    headers = {"Cookie": cookie, "Origin": server_group.url}
    first, second = await sync_to_async(_sockets_on_both)(server_group, url, headers)
    with first, second:
        memory = await sync_to_async(add_memory)(
            text="Prefers window seats", scope=Scope(user_id="user-9"), actor=EXTRACTOR
        )
        for conn in (first, second):
            html = await sync_to_async(conn.recv)(timeout=20)
            assert f'href="/inspector/memories/{memory.id}/"' in html


# --- Stopping -------------------------------------------------------------------------------------

# A child that takes its time to exit after SIGTERM, as a daphne with the model loaded does, and
# writes down when the signal came and when it left.
_SLOW_TO_STOP = """
import signal, sys, time
log = sys.argv[1]
def bye(signum, frame):
    with open(log, "a") as f:
        f.write(f"term {time.monotonic()}\\n")
    time.sleep(1.0)
    with open(log, "a") as f:
        f.write(f"exit {time.monotonic()}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
with open(log, "a") as f:
    f.write("ready\\n")
while True:
    time.sleep(0.05)
"""


def test_stopping_signals_every_child_before_waiting_for_any(tmp_path: Path) -> None:
    """Ctrl-C with N server processes: one by one took N times a daphne's exit (~4 s each)."""
    from core.launcher import Child, RestartBudget, Supervisor

    logs = [tmp_path / f"child-{i}.log" for i in range(3)]
    children = [
        Child(f"slow-{i}", [sys.executable, "-c", _SLOW_TO_STOP, str(log)], RestartBudget(1))
        for i, log in enumerate(logs)
    ]
    supervisor = Supervisor(
        children=children, redis=None, redis_budget=RestartBudget(1), pid_file=tmp_path / "pids.json"
    )
    supervisor.start_children()
    deadline = time.monotonic() + 30
    while not all(log.exists() and "ready" in log.read_text() for log in logs):
        assert time.monotonic() < deadline, "the children did not start"
        time.sleep(0.05)

    supervisor.stop_children()

    events = [dict(line.split() for line in log.read_text().splitlines()[1:]) for log in logs]
    assert all(child.exit_code() == 0 for child in children)
    # Every child had its SIGTERM before the first of them was done exiting.
    assert max(float(e["term"]) for e in events) < min(float(e["exit"]) for e in events)
