"""What every WebSocket of the product shares: the origin check, refusals the page can read, and
the close codes.

A refusal before the handshake reaches the browser as close code 1006 with no reason, which a
page cannot tell from a network failure (it would reconnect forever). So a refused socket is
accepted and at once closed with one of these codes; the page says why and stops retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from core.channel_layer import is_echo, joined_here, left_here
from core.outage import REDIS_DOWN, OutageLog

logger = logging.getLogger(__name__)

# Application codes (4000-4999 are free for applications; the last three digits follow HTTP).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
# RFC 6455's "try again later": Redis is down while the socket opens; the pages reconnect with backoff.
CLOSE_TRY_AGAIN = 1013
# A message over the server's size limit is closed with RFC 6455's 1009 (core/serve.py).

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, value: str) -> Origin | None:
        """`scheme://host[:port]` with the scheme's default port filled in; None when malformed."""
        try:
            parts = urlsplit(value.strip())
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
            return None
        return cls(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme])


def _headers(scope: dict[str, Any]) -> dict[bytes, str]:
    return {name.lower(): value.decode("latin1") for name, value in scope.get("headers", [])}


def _is_secure(scope: dict[str, Any], headers: dict[bytes, str]) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    # Behind a TLS proxy the socket itself is plain: trust the proxy's header, as Django does.
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        header, expected = proxy
        name = header.removeprefix("HTTP_").replace("_", "-").lower().encode()
        return headers.get(name, "").split(",")[0].strip() == expected
    return False


def _allowed_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def own_origin(scope: dict[str, Any]) -> Origin | None:
    """The origin of the page this server served, from the Host the browser connected to (it cannot
    be set by a script) and the scheme; None when that host is not one of ALLOWED_HOSTS."""
    headers = _headers(scope)
    host = headers.get(b"host", "")
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return None
    scheme = "https" if _is_secure(scope, headers) else "http"
    return Origin.parse(f"{scheme}://{host}")


def _trusted(origin: Origin, pattern: str) -> bool:
    """One entry of WEBSOCKET_ALLOWED_ORIGINS: an exact origin, or `scheme://*.domain[:port]` for
    the domain's subdomains (the shape CSRF_TRUSTED_ORIGINS uses)."""
    wildcard = "://*." in pattern
    allowed = Origin.parse(pattern.replace("://*.", "://", 1) if wildcard else pattern)
    if allowed is None or (allowed.scheme, allowed.port) != (origin.scheme, origin.port):
        return False
    if wildcard:
        return origin.host.endswith("." + allowed.host)
    return origin.host == allowed.host


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Scheme, host and port of the Origin header equal this server's own origin or a configured one.
    A browser always sends Origin on a WebSocket; a socket without one is refused."""
    raw = _headers(scope).get(b"origin")
    origin = Origin.parse(raw) if raw else None
    if origin is None:
        return False
    if origin == own_origin(scope):
        return True
    return any(_trusted(origin, pattern) for pattern in settings.WEBSOCKET_ALLOWED_ORIGINS)


def sign_in_group(session_key: str | None) -> str:
    """The channel group of every socket opened with one browser login (Django session): signing
    out closes them all. Named by a digest: the session key is a credential, not a Redis key name."""
    digest = hashlib.sha256((session_key or "").encode()).hexdigest()[:40]
    return f"signin-{digest}"


SIGNED_OUT_MESSAGE = {"type": "auth.signed_out"}


# While Redis is away a socket waits for its channel layer with capped backoff instead of dying.
LAYER_RETRY_FIRST_SECONDS = 0.2
LAYER_RETRY_MAX_SECONDS = 5.0
_layer_log = OutageLog(logger, "live sockets")


class ProductSocket(AsyncWebsocketConsumer):
    """Base of the product's sockets: refusals the page can read, closed when their login ends, and
    kept open through a Redis outage (they rejoin their groups when it answers again)."""

    login_group: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._joined: set[str] = set()
        self._layer_lost = False
        self._layer_receive: Callable[[], Awaitable[dict[str, Any]]] | None = None

    # Channels sets `channel_receive` to the layer's receive and awaits it for as long as the socket
    # is open; a ConnectionError from it would end the consumer (close 1011). Wrap it instead.
    @property
    def channel_receive(self) -> Callable[[], Awaitable[dict[str, Any]]]:
        return self._receive_from_layer

    @channel_receive.setter
    def channel_receive(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self._layer_receive = receive

    async def _receive_from_layer(self) -> dict[str, Any]:
        assert self._layer_receive is not None
        delay = LAYER_RETRY_FIRST_SECONDS
        while True:
            try:
                if self._layer_lost:
                    # Group memberships may be gone with the outage (a pub/sub layer's subscriptions,
                    # or a Redis restarted without its data): join again, then listen.
                    for group in list(self._joined):
                        await self.channel_layer.group_add(group, self.channel_name)
                    self._layer_lost = False
                    _layer_log.ok()
                return await self._layer_receive()
            except REDIS_DOWN as exc:
                self._layer_lost = True
                _layer_log.failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LAYER_RETRY_MAX_SECONDS)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except REDIS_DOWN as exc:
            if self._layer_receive is not None:
                raise
            # No inbox yet (a pub/sub layer subscribes to it at once): nothing was dispatched, so
            # answer the handshake here.
            _layer_log.failed(exc)
            await Refusal(CLOSE_TRY_AGAIN)(scope, receive, send)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        try:
            await super().websocket_connect(message)
        except REDIS_DOWN as exc:
            _layer_log.failed(exc)
            await self.leave_groups()
            await self.refuse(CLOSE_TRY_AGAIN)
        else:
            _layer_log.ok()

    async def join_group(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self._joined.add(group)
        joined_here(group, self)  # core.channel_layer.deliver hands this process's frames over directly

    async def leave_groups(self) -> None:
        for group in list(self._joined):
            self._joined.discard(group)
            left_here(group, self)
            # Redis may be down: its group entries expire by themselves (the layer's group_expiry).
            with contextlib.suppress(*REDIS_DOWN):
                await self.channel_layer.group_discard(group, self.channel_name)

    async def refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def join_login_group(self) -> None:
        """Signed-in sockets only: a visitor's socket has no login to end."""
        user = self.scope.get("user")
        session = self.scope.get("session")
        if user is None or not user.is_authenticated or session is None or not session.session_key:
            return
        self.login_group = sign_in_group(session.session_key)
        await self.join_group(self.login_group)

    async def dispatch(self, message: dict[str, Any]) -> None:
        if is_echo(message):  # delivered to this socket directly already (core.channel_layer.deliver)
            return
        await super().dispatch(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        try:
            await super().websocket_disconnect(message)
        finally:
            await self.leave_groups()

    async def auth_signed_out(self, message: dict[str, Any]) -> None:
        await self.close(code=CLOSE_UNAUTHENTICATED)


class Refusal:
    """An ASGI app that accepts and at once closes with `code`. It needs no consumer (nor its
    channel-layer inbox): nothing is ever sent on the socket."""

    def __init__(self, code: int) -> None:
        self.code = code

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": self.code})
            elif message["type"] == "websocket.disconnect":
                return


# The route of last resort: any other path is "not found", not an exception in the router. (Any:
# Django's URL patterns type their callbacks as views; Channels' router takes ASGI apps.)
refuse_unknown_path: Any = Refusal(CLOSE_NOT_FOUND)


class OriginCheck:
    """ASGI middleware for WebSockets: a page from another origin (another port counts) never
    reaches the consumers, so it never acts with the user's cookie."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.refuse = Refusal(CLOSE_FORBIDDEN)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            logger.info(
                "websocket refused: origin %r is not this site's (host %r)",
                _headers(scope).get(b"origin"),
                _headers(scope).get(b"host"),
            )
            return await self.refuse(scope, receive, send)
        return await self.application(scope, receive, send)
