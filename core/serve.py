"""daphne, as Engram runs it: `python -m core.serve [daphne's options] config.asgi:application`.

One difference from `python -m daphne`: a WebSocket message over daphne's size limit
(--websocket-max-message-size, 1 MiB by default) is closed with code 1009 ("message too big").
autobahn, under daphne, otherwise drops the TCP connection, which a browser reports as 1006 with
no reason: the chat page could not tell the user why, and would resend the message forever.
(Frames under that limit but over CHAT_MAX_FRAME_BYTES get an error frame from the consumer.)

Under `make run` each process serves a socket the launcher bound and passed down
(core/listeners.py), named by `-e fd:fileno=N:domain=INET|INET6`; the process starts listening on
it here, once the application is loaded. (Twisted's own `fd` parser expects a listening socket and
passes `domain` on as a string, which only its default, IPv4, survives.)

Before it listens, the process runs the start-up checks (core/startup.py) and refuses to serve,
with one plain line, what it would serve wrong (data still in an older key layout).
"""

from __future__ import annotations

import socket
from typing import Any

import daphne.server
from daphne.cli import CommandLineInterface
from daphne.server import Server
from twisted.internet.endpoints import AdoptedStreamServerEndpoint, serverFromString

from core.listeners import BACKLOG
from core.startup import startup_problems


def _endpoint(reactor: Any, description: str) -> Any:
    kind, _, rest = description.partition(":")
    if kind == "fd":
        options = dict(part.split("=", 1) for part in rest.split(":"))
        family = getattr(socket, "AF_" + options.get("domain", "INET"))
        fileno = int(options["fileno"])
        # Listening again on a listening socket only sets its backlog.
        inherited = socket.socket(family, socket.SOCK_STREAM, fileno=fileno)
        inherited.listen(BACKLOG)
        inherited.detach()  # the descriptor stays open, for Twisted to adopt
        return AdoptedStreamServerEndpoint(reactor, fileno, family)
    return serverFromString(reactor, description)


daphne.server.serverFromString = _endpoint  # daphne looks it up at listen time


class EngramServer(Server):
    """daphne's Server; its WebSocket factory closes a failing connection with a close frame."""

    def run(self) -> None:
        # Django is set up by now: daphne imported the application (config.asgi) first.
        problems = startup_problems()
        if problems:
            raise SystemExit("; ".join(problems))
        super().run()

    # daphne builds and configures the factory inside run(); failByDrop is not among the options it
    # sets, so it is set here, as the factory is stored.
    @property
    def ws_factory(self) -> Any:
        return self._engram_ws_factory

    @ws_factory.setter
    def ws_factory(self, factory: Any) -> None:
        factory.setProtocolOptions(failByDrop=False)
        self._engram_ws_factory = factory


class EngramCommandLine(CommandLineInterface):
    server_class = EngramServer


if __name__ == "__main__":
    EngramCommandLine.entrypoint()
