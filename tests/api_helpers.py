"""Keys and clients for the API tests: real keys in the test database, the real Django stack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.test import Client

from core.api_keys import create_api_key
from core.models import ApiKey


def make_key(
    name: str = "staff-key",
    *,
    role: str = "staff",
    agent_id: str = "engram",
    namespaces: Sequence[str] = ("default",),
    rate_limit_per_minute: int = 10_000,
) -> tuple[ApiKey, str]:
    return create_api_key(
        name=name,
        role=role,
        agent_id=agent_id,
        namespaces=list(namespaces),
        rate_limit_per_minute=rate_limit_per_minute,
    )


class ApiClient:
    """A Django test client that sends one key with every request (X-API-Key unless told)."""

    def __init__(self, raw_key: str | None, *, scheme: str = "header") -> None:
        self.client = Client()
        self.headers: dict[str, str] = {}
        if raw_key is not None:
            if scheme == "header":
                self.headers["X-API-Key"] = raw_key
            elif scheme == "bearer":
                self.headers["Authorization"] = f"Bearer {raw_key}"
            else:
                import base64

                token = base64.b64encode(f"engram:{raw_key}".encode()).decode()
                self.headers["Authorization"] = f"Basic {token}"

    def _call(self, method: str, path: str, body: Any = None, **extra: Any) -> Any:
        headers = {**self.headers, **extra.pop("headers", {})}
        call = getattr(self.client, method)
        if body is None:
            return call(path, headers=headers, **extra)
        return call(path, data=body, content_type="application/json", headers=headers, **extra)

    def get(self, path: str, **extra: Any) -> Any:
        return self._call("get", path, **extra)

    def post(self, path: str, body: Any = None, **extra: Any) -> Any:
        return self._call("post", path, body if body is not None else {}, **extra)

    def put(self, path: str, body: Any = None, **extra: Any) -> Any:
        return self._call("put", path, body if body is not None else {}, **extra)

    def patch(self, path: str, body: Any = None, **extra: Any) -> Any:
        return self._call("patch", path, body if body is not None else {}, **extra)

    def delete(self, path: str, **extra: Any) -> Any:
        return self._call("delete", path, **extra)
