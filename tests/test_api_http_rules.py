"""Issue 16, tester round: the HTTP rules both APIs (/api/v1 and the compat /v1) keep alike: a wrong
method is a 405 problem with Allow, a body not sent as JSON is a 415, a repeated single-valued query
parameter is a 422 naming it, a field error names the field once, every status has its reason
phrase on the wire (daphne)."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from agent_memory_client import create_memory_client
from agent_memory_client.exceptions import MemoryNotFoundError
from agent_memory_client.filters import UserId
from agent_memory_client.models import ClientMemoryRecord

from api.compat import api as compat_api
from api.problems import PROBLEM_CONTENT_TYPE
from api.v1 import api as v1_api
from tests.api_helpers import ApiClient, make_key

pytestmark = [pytest.mark.django_db, pytest.mark.shared_server]


@pytest.fixture
def staff(redis_client: redis.Redis) -> ApiClient:
    return ApiClient(make_key("staff")[1])


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    body = json.loads(response.content)
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "/api/v1/search", {"POST"}),
        ("delete", "/api/v1/users/alice/counts", {"GET"}),
        ("patch", "/v1/long-term-memory/search", {"POST"}),
        ("post", "/v1/health", {"GET"}),
    ],
)
def test_a_wrong_method_is_a_405_problem_with_allow(
    staff: ApiClient, method: str, path: str, allowed: set[str]
) -> None:
    response = getattr(staff.client, method)(path, headers=staff.headers)
    _problem(response, 405)
    assert {m.strip() for m in response["Allow"].split(",")} == allowed


@pytest.mark.parametrize("path", ["/api/v1/search", "/v1/long-term-memory/search"])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_a_json_body_sent_as_another_type_is_a_415(
    staff: ApiClient, path: str, content_type: str, redis_client: redis.Redis
) -> None:
    body = json.dumps({"text": "coffee", "user_id": "alice"})
    response = staff.client.post(path, data=body, content_type=content_type, headers=staff.headers)
    _problem(response, 415)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/problem+json"])
def test_json_with_a_charset_or_a_json_suffix_is_read(staff: ApiClient, content_type: str) -> None:
    body = json.dumps({"text": "coffee", "user_id": "alice"})
    response = staff.client.post(
        "/api/v1/search", data=body, content_type=content_type, headers=staff.headers
    )
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/sessions?user_id=alice&user_id=bob", "user_id"),
        ("/api/v1/memories/m1/history?limit=1&limit=3", "limit"),
        ("/v1/working-memory/?user_id=alice&user_id=bob", "user_id"),
    ],
)
def test_a_repeated_single_valued_parameter_is_a_422_naming_it(
    staff: ApiClient, path: str, name: str
) -> None:
    body = _problem(staff.get(path), 422)
    assert ["query", name] in [error["loc"] for error in body["errors"]]


def test_a_list_parameter_stays_repeatable(staff: ApiClient) -> None:
    response = staff.client.delete("/v1/long-term-memory?memory_ids=m1&memory_ids=m2", headers=staff.headers)
    assert response.status_code == 200, response.content


def test_a_field_error_names_the_field_once(staff: ApiClient) -> None:
    body = _problem(
        staff.post("/api/v1/search", {"text": "coffee", "user_id": "alice", "mode": "psychic"}), 422
    )
    locs = [error["loc"] for error in body["errors"]]
    assert ["body", "mode"] in locs, locs
    assert not any(loc[:2] == ["body", "body"] for loc in locs), locs


def test_the_document_declares_415_where_a_body_is_taken() -> None:
    for api in (v1_api, compat_api):
        for item in api.get_openapi_schema()["paths"].values():
            for operation in item.values():
                assert ("requestBody" in operation) == (415 in operation["responses"])


def _status_line(url: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        connection.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.reason
    finally:
        connection.close()


def test_every_problem_status_has_its_reason_phrase_on_the_wire(live_url: str) -> None:
    _, raw = make_key("slow", rate_limit_per_minute=1)
    json_headers = {"X-API-Key": raw, "Content-Type": "application/json"}
    assert _status_line(live_url, "POST", "/api/v1/search", json_headers) == (422, "Unprocessable Entity")
    assert _status_line(live_url, "POST", "/api/v1/search", json_headers) == (429, "Too Many Requests")
    assert _status_line(live_url, "PUT", "/api/v1/search", {}) == (405, "Method Not Allowed")


@pytest.fixture
def app_key(live_url: str) -> str:
    return make_key("header-app", role="app", agent_id="header-bot", namespaces=("shop",))[1]


async def test_the_client_can_send_its_key_as_a_header_set_after_construction(
    live_url: str, app_key: str
) -> None:
    # The README's alternative to the key in the URL, whose userinfo the client's own errors print.
    raw = app_key
    client = await create_memory_client(live_url, timeout=60.0, default_namespace="shop")
    try:
        client._client.headers["Authorization"] = f"Bearer {raw}"
        await client.create_long_term_memory(
            [ClientMemoryRecord(text="Alice likes green tea", user_id="alice")]
        )
        results = await client.search_long_term_memory("green tea", user_id=UserId(eq="alice"))
        assert [m.text for m in results.memories] == ["Alice likes green tea"]
        with pytest.raises(MemoryNotFoundError) as missing:
            await client.get_long_term_memory("no-such-memory")
        assert raw not in str(missing.value)
    finally:
        await client.close()
