"""Engram's REST API, version 1: `/api/v1/`, its OpenAPI 3.1 document at `/api/v1/openapi.json`
and the docs page at `/api/v1/docs`. Every operation needs an API key (api/auth.py) except health."""

from __future__ import annotations

from api.auth import API_AUTH
from api.problems import ProblemAPI, install_problem_handlers
from api.v1 import health, memories, search, sessions, users

api = ProblemAPI(
    title="Engram API",
    version="1",
    description=(
        "Engram's memory for other agents: working memory (sessions), long-term memories, search, "
        "the prompt context and users. Send an API key as `X-API-Key`, as a Bearer token, or as the "
        "password of HTTP Basic. Errors are RFC 9457 problem details."
    ),
    urls_namespace="api-v1",
    auth=API_AUTH,
    docs_url="/docs",
)
install_problem_handlers(api)

api.add_router("/health", health.router)
api.add_router("/sessions", sessions.router)
api.add_router("/users", users.router)
api.add_router("/memories", memories.router)
api.add_router("/search", search.search_router)
api.add_router("/memory-prompt", search.prompt_router)
