"""ASGI entry point: HTTP through Django (and /mcp through the MCP server), WebSockets through
Channels (origin- and auth-checked)."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before anything imports models (consumers, routing).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from api.mcp.http import mcp_http_app  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from core.embeddings import warm_up_in_background  # noqa: E402
from core.websockets import OriginCheck  # noqa: E402

warm_up_in_background()

MCP_PATH = "/mcp"


async def http_router(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/mcp (the MCP server over streamable HTTP) beside Django for every other path."""
    path = scope.get("path", "")
    if path == MCP_PATH or path.startswith(MCP_PATH + "/"):
        await mcp_http_app(scope, receive, send)
    else:
        await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_router,
        "websocket": OriginCheck(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
