"""The agent-memory-client compatible API under Schemathesis, as /api/v1 is (the same checks and
settings, tests/test_api_schemathesis.py): every operation of /v1/openapi.json, with an app key and
with a staff key, finds no server error and no response that breaks the document."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from jsonschema import Draft202012Validator
from schemathesis.specs.openapi.definitions import OPENAPI_31

from api.compat import api
from tests.api_helpers import make_key
from tests.test_api_schemathesis import (  # noqa: F401 - the autouse fixture is used by being here
    CHECKS,
    _keep_the_test_database_open,
    hypothesis_settings,
)

pytestmark = pytest.mark.django_db

schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", get_wsgi_application())


@pytest.fixture
def app_key(db: None, redis_client: Any) -> str:
    return make_key("schemathesis-ams", role="app", agent_id="fuzz-app", namespaces=["fuzz", "other"])[1]


@pytest.fixture
def staff_key(db: None, redis_client: Any) -> str:
    return make_key("schemathesis-ams-staff")[1]


@schema.parametrize()
@hypothesis_settings
def test_every_compat_operation_with_an_app_key(case: Any, app_key: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {app_key}"}, checks=CHECKS)


@schema.parametrize()
@hypothesis_settings
def test_every_compat_operation_with_a_staff_key(case: Any, staff_key: str) -> None:
    case.call_and_validate(headers={"X-API-Key": staff_key}, checks=CHECKS)


def test_the_compat_document_validates() -> None:
    document = json.loads(json.dumps(api.get_openapi_schema()))
    Draft202012Validator(OPENAPI_31).validate(document)
    assert set(document["paths"]) == {
        "/v1/health",
        "/v1/working-memory/",
        "/v1/working-memory/{session_id}",
        "/v1/long-term-memory/",
        "/v1/long-term-memory/search",
        "/v1/long-term-memory/{memory_id}",
        "/v1/long-term-memory",
        "/v1/memory/prompt",
    }
