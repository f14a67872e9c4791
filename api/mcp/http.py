"""The MCP server over streamable HTTP, at /mcp (config/asgi.py routes it here).

Every request needs an API key (`X-API-Key`, or `Authorization: Bearer`), checked here before the
SDK sees the request, with the REST API's rate limit: a missing, unknown or revoked key is a 401
problem, a key over its limit a 429 with Retry-After.

The server is **stateless** (`stateless_http=True`, JSON responses): each POST is a whole
exchange, so there is no `Mcp-Session-Id` for one key to reuse with another (the SDK ties a session
to its creator only for its own OAuth users), nothing held in memory between requests, and any of
several daphne processes behind a balancer can answer any request. The tools need no server-to-
client messages, which is all a session would add.

Daphne sends no ASGI lifespan events, so the SDK's session manager (whose task group every request
runs in) is started lazily on the loop of the first request, and again should a new loop serve.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from api.callers import ApiCaller
from api.mcp.server import build_server, checked_caller
from api.problems import PROBLEM_CONTENT_TYPE, RateLimited
from core.outage import REDIS_DOWN, RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE

ASGIScope = dict[str, Any]
Receive = Any
Send = Any
# Where the wrapper leaves the authenticated caller in the request's ASGI scope for the tools.
CALLER_SCOPE_KEY = "engram.api_caller"


def transport_security() -> TransportSecuritySettings:
    """The SDK's Host and Origin checks, from the site's own settings (left to itself, the SDK
    allows only localhost). Django's ".example.com" (any subdomain) and an origin pattern with "*."
    cannot be said in the SDK's terms: name those hosts and origins one by one. With "*" in
    ALLOWED_HOSTS the site accepts any Host, and so does this: the API key (never a credential a
    browser adds by itself) is what protects the endpoint."""
    hosts = [h for h in settings.ALLOWED_HOSTS if h]
    if not hosts and settings.DEBUG:  # as Django itself allows then
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    if "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    names = [h.lstrip(".") for h in hosts]
    origins = [o for o in settings.CSRF_TRUSTED_ORIGINS if "*" not in o]
    for name in names:
        for scheme in ("http", "https"):
            origins += [f"{scheme}://{name}", f"{scheme}://{name}:*"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[pattern for name in names for pattern in (name, f"{name}:*")],
        allowed_origins=origins,
    )


async def _caller_of_request(ctx: Context[Any, Any]) -> ApiCaller:
    request = ctx.request_context.request
    caller = None if request is None else getattr(request, "scope", {}).get(CALLER_SCOPE_KEY)
    if not isinstance(caller, ApiCaller):  # only if a request reached the SDK another way
        raise ToolError("this call has no API key")
    return caller


def _header(scope: ASGIScope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def raw_key(scope: ASGIScope) -> str:
    """The key of `X-API-Key`, else of `Authorization: Bearer <key>`; "" without one."""
    key = _header(scope, b"x-api-key").strip()
    if key:
        return key
    scheme, _, token = _header(scope, b"authorization").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _problem(
    send: Send, *, status: int, title: str, detail: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass
class _Running:
    loop: asyncio.AbstractEventLoop
    manager: StreamableHTTPSessionManager
    ready: asyncio.Event
    task: asyncio.Task[None] | None = None
    failed: BaseException | None = None


class McpHttpApp:
    """The ASGI app for /mcp."""

    def __init__(self) -> None:
        self._running: _Running | None = None

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the router only sends HTTP here
            raise ValueError(f"the MCP endpoint serves HTTP, not {scope['type']}")
        try:
            caller = await checked_caller(raw_key(scope))
        except REDIS_DOWN:  # the rate-limit counter lives in Redis
            await _problem(
                send,
                status=503,
                title="Service Unavailable",
                detail=UNAVAILABLE_MESSAGE,
                headers=[(b"retry-after", str(RETRY_AFTER_SECONDS).encode())],
            )
            return
        except RateLimited as exc:
            await _problem(
                send,
                status=429,
                title="Too Many Requests",
                detail=exc.detail,
                headers=[(b"retry-after", str(exc.retry_after).encode())],
            )
            return
        if caller is None:
            await _problem(
                send,
                status=401,
                title="Unauthorized",
                # The REST API's words: a key that was sent but is wrong, revoked or malformed is
                # told apart from none at all by nothing (the same 401 either way).
                detail="a valid API key is required: send it as X-API-Key or as a Bearer token",
                headers=[(b"www-authenticate", b'Bearer realm="engram"')],
            )
            return
        manager = await self._manager()
        await manager.handle_request({**scope, CALLER_SCOPE_KEY: caller}, receive, send)

    async def _manager(self) -> StreamableHTTPSessionManager:
        loop = asyncio.get_running_loop()
        running = self._running
        if running is None or running.loop is not loop:
            # No await between the check and this assignment: one start per loop, however many
            # requests arrive at once.
            server = build_server(caller_of=_caller_of_request)
            server.streamable_http_app(
                streamable_http_path="/",
                stateless_http=True,
                json_response=True,
                transport_security=transport_security(),
            )
            running = _Running(loop=loop, manager=server.session_manager, ready=asyncio.Event())
            running.task = loop.create_task(self._serve(running))
            self._running = running
        await running.ready.wait()
        if running.failed is not None:
            self._running = None  # the next request tries again
            raise RuntimeError("the MCP session manager did not start") from running.failed
        return running.manager

    @staticmethod
    async def _serve(running: _Running) -> None:
        try:
            async with running.manager.run():
                running.ready.set()
                await asyncio.Event().wait()  # until the loop ends (the task is cancelled then)
        except Exception as exc:
            running.failed = exc
            raise
        finally:
            running.ready.set()


mcp_http_app = McpHttpApp()
