"""Engram's memory tools over MCP (the official SDK's MCPServer): `python manage.py mcp` on stdio,
streamable HTTP at /mcp. The tools are memory/toolkit.py's, confined by the caller's API key."""
