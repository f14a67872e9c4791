"""`python manage.py mcp`: the MCP server on stdin/stdout, for a client that starts it as a process.

The key comes from `--key` or the ENGRAM_API_KEY environment variable (better: it stays out of the
process list). A missing, unknown or revoked key ends the command at once with one plain line on
stderr; stdout carries nothing but the protocol. The key is checked again at every tool call, so a
key revoked while the server runs stops working, and each call counts against its rate limit as a
REST request does.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import anyio
from django.core.management.base import BaseCommand, CommandParser
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from api.auth import caller_for_key
from api.callers import ApiCaller
from api.mcp.server import build_server, checked_caller
from api.problems import RateLimited
from core.outage import REDIS_DOWN, UNAVAILABLE_MESSAGE

KEY_VARIABLE = "ENGRAM_API_KEY"


class Command(BaseCommand):
    help = f"Serve Engram's memory tools over MCP on stdin/stdout (API key from --key or {KEY_VARIABLE})."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key", default="", help=f"the API key (default: ${KEY_VARIABLE})")

    def handle(self, *args: Any, **options: Any) -> None:
        raw_key = (options["key"] or os.environ.get(KEY_VARIABLE, "")).strip()
        if not raw_key:
            self._stop(f"no API key: set {KEY_VARIABLE} or pass --key")
        try:
            caller = caller_for_key(raw_key)
        except RateLimited as exc:
            self._stop(f"this API key is over its rate limit: {exc.detail}")
        except REDIS_DOWN:
            self._stop(UNAVAILABLE_MESSAGE)
        if caller is None:
            self._stop("the API key is not valid (unknown or revoked)")

        async def caller_of(ctx: Context[Any, Any]) -> ApiCaller:
            try:
                current = await checked_caller(raw_key)
            except RateLimited as exc:
                raise ToolError(f"{exc.detail}; try again in {exc.retry_after} s") from exc
            if current is None:
                raise ToolError("the API key is no longer valid (revoked)")
            return current

        anyio.run(build_server(caller_of=caller_of).run_stdio_async)

    def _stop(self, message: str) -> NoReturn:
        sys.stderr.write(message + "\n")
        raise SystemExit(1)
