"""Redis Agent Memory Server's `/v1/...` API over Engram's engine, so `agent-memory-client` (0.14)
works with `base_url` = the server's root and the key in the URL: `http://engram:<key>@host:8000`.

A second NinjaAPI (URL namespace "ams") mounted at the root; its OpenAPI document is
`/v1/openapi.json`, without a docs page (Engram's own API and docs are `/api/v1/`). The same keys,
confinement and errors (problem details, with the string `detail` the client reads) as /api/v1/.
Paths are exactly the client's, trailing slashes included: it follows no redirects."""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest

from api.auth import API_AUTH
from api.compat import memories, sessions
from api.compat.schemas import HealthOut
from api.http_rules import JsonParser
from api.problems import ERRORS, ProblemAPI, install_problem_handlers


class ObjectBodyParser(JsonParser):
    """Every body this API takes is a JSON object: ninja would read an array or a string as an
    empty object (all defaults) and answer as if nothing was wrong."""

    def parse_body(self, request: HttpRequest) -> Any:
        data = super().parse_body(request)
        if not isinstance(data, dict):
            raise ValueError("the request body must be a JSON object")
        return data


api = ProblemAPI(
    title="Engram: Agent Memory Server compatible API",
    version="0.14",
    description=(
        "The calls agent-memory-client makes, mapped onto Engram's engine. Authenticate with an API "
        "key as the password of HTTP Basic (in the URL: http://engram:<key>@host/), as a Bearer "
        "token or as X-API-Key."
    ),
    urls_namespace="ams",
    auth=API_AUTH,
    docs_url=None,
    openapi_url="/v1/openapi.json",
    parser=ObjectBodyParser(),
)
install_problem_handlers(api)


@api.get("/v1/health", response={200: HealthOut, **ERRORS}, auth=None, tags=["ams health"])
def health(request: HttpRequest) -> dict[str, float]:
    """Public, as in AMS: the server's time in milliseconds since the epoch."""
    return {"now": float(int(time.time() * 1000))}


api.add_router("", sessions.router)
api.add_router("", memories.router)
