"""daphne, as Engram runs it: `python -m core.serve [daphne's options] config.asgi:application`.

One difference from `python -m daphne`: a WebSocket message over daphne's size limit
(--websocket-max-message-size, 1 MiB by default) is closed with code 1009 ("message too big").
autobahn, under daphne, otherwise drops the TCP connection, which a browser reports as 1006 with
no reason: the chat page could not tell the user why, and would resend the message forever.
(Frames under that limit but over CHAT_MAX_FRAME_BYTES get an error frame from the consumer.)
"""

from __future__ import annotations

from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server


class EngramServer(Server):
    """daphne's Server; its WebSocket factory closes a failing connection with a close frame."""

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
