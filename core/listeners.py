"""One port, several server processes: the sockets the launcher (and the benches and tests) hand to
each `python -m core.serve` process.

On Linux every process gets a socket of its own, bound with SO_REUSEPORT to the same address: the
kernel spreads new connections over the listening ones by a hash of the connection, so 100
WebSockets opened at once land about evenly. (One socket shared by all would let the first
process to wake take a whole burst: Twisted accepts up to 100 connections per wake-up.) The
process itself starts listening (core/serve.py) once its application is loaded, so no connection
waits on a process that is still starting; its socket dies with it, so while it is being
restarted the kernel sends every new connection to the others, and the restarted process gets a
new socket (`bind_again`). Elsewhere SO_REUSEPORT does not balance: the processes share one socket.
"""

from __future__ import annotations

import socket
import sys

BACKLOG = 1024
APPLICATION = "config.asgi:application"


class PortInUse(Exception):
    """The HTTP address cannot be bound (another server is on it)."""


def balanced() -> bool:
    """Each process gets a socket of its own (Linux's SO_REUSEPORT balances; BSD's and macOS's do not)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _bound(family: socket.AddressFamily, address: tuple[str, int], *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def server_sockets(*, host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets bound to (host, port), one per server process (the same listening socket
    repeated where the kernel cannot balance). PortInUse when anything else is on the address."""
    if count < 1:
        raise ValueError("at least one server process")
    family, _, _, _, found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    address = (str(found[0]), int(found[1]))
    sockets: list[socket.socket] = []
    try:
        # Without SO_REUSEPORT first: a server already there (even one of ours) makes this fail,
        # where joining its SO_REUSEPORT group would silently share the port with it.
        with _bound(family, address, reuse_port=False) as probe:
            address = probe.getsockname()[:2]  # port 0: the one the kernel chose
        if not balanced():
            shared = _bound(family, address, reuse_port=False)
            shared.listen(BACKLOG)
            return [shared] * count
        for _ in range(count):
            sockets.append(_bound(family, address, reuse_port=True))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sockets


def bind_again(*, family: socket.AddressFamily, address: tuple[str, int]) -> socket.socket:
    """One more SO_REUSEPORT socket on an address already served: for a restarted process."""
    try:
        return _bound(family, address, reuse_port=True)
    except OSError as exc:
        raise PortInUse(f"cannot listen on {address[0]}:{address[1]} again: {exc.strerror or exc}") from exc


def serve_args(sock: socket.socket, *, python: str = sys.executable) -> list[str]:
    """The command of one server process serving on an inherited socket (pass its fd)."""
    domain = "INET6" if sock.family == socket.AF_INET6 else "INET"
    return [python, "-m", "core.serve", "-e", f"fd:fileno={sock.fileno()}:domain={domain}", APPLICATION]
