"""Issue 16 item 2: the API is closed without a valid key; keys are hashed, confined and rate limited."""

from __future__ import annotations

import pytest

from tests.api_helpers import ApiClient, make_key

pytestmark = pytest.mark.django_db


def test_a_request_without_a_key_is_refused_with_a_problem_and_with_a_key_answered(redis_client) -> None:
    _, raw = make_key()
    refused = ApiClient(None).get("/api/v1/users/alice/counts")
    assert refused.status_code == 401
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["status"] == 401
    answered = ApiClient(raw).get("/api/v1/users/alice/counts")
    assert answered.status_code == 200, answered.content


def test_health_is_public(redis_client) -> None:
    response = ApiClient(None).get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
