"""Issue 16 acceptance: the OpenAPI document validates, and a Schemathesis run over every operation
(property-based, with a staff key and with an app key) finds no server error and no response that
breaks the document (status, content type, headers, body schema)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.definitions import OPENAPI_31

from api.v1 import api
from tests.api_helpers import make_key

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Small on purpose: the whole suite has a ten-minute budget. Every operation still gets examples,
# positive and negative (values outside the schema), from the staff key and the app key.
EXAMPLES = 5


@pytest.fixture(autouse=True)
def _keep_the_test_database_open() -> Iterator[None]:
    # Schemathesis calls the WSGI app itself, whose request signals would close the test database's
    # connection after every request (Django's test Client disconnects them the same way).
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


# Loaded once at collection, through the WSGI app: the document exactly as /api/v1/openapi.json serves it.
# The staff run has every phase (explicit examples, boundary values of each schema, fuzzing); the app
# key's run, which is about what a confined key gets back, skips the boundary-value phase for time.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
app_schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json",
    get_wsgi_application(),
    config=schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}}),
)
hypothesis_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


@pytest.fixture
def staff_key(db: None, redis_client: Any) -> str:
    return make_key("schemathesis-staff")[1]


@pytest.fixture
def app_key(db: None, redis_client: Any) -> str:
    return make_key("schemathesis-app", role="app", agent_id="fuzz-app", namespaces=["fuzz", "other"])[1]


@schema.parametrize()
@hypothesis_settings
def test_every_operation_with_a_staff_key(case: Any, staff_key: str) -> None:
    case.call_and_validate(headers={"X-API-Key": staff_key}, checks=CHECKS)


@app_schema.parametrize()
@hypothesis_settings
def test_every_operation_with_an_app_key(case: Any, app_key: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {app_key}"}, checks=CHECKS)


def test_the_openapi_document_validates_and_declares_every_error() -> None:
    document = json.loads(json.dumps(api.get_openapi_schema()))  # as served: JSON keys are strings
    assert document["openapi"].startswith("3.1")
    # The OpenAPI 3.1 schema (OAI's schemas/v3.1/schema.yaml, as Schemathesis ships it), and every
    # schema in the document against JSON Schema 2020-12, the dialect 3.1 uses.
    Draft202012Validator(OPENAPI_31).validate(document)
    for schema_object in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema_object)
    assert set(document["components"]["securitySchemes"]) == {"KeyHeaderAuth", "BearerAuth", "BasicAuth"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            assert {400, 401, 404, 422, 429, 500} <= {int(s) for s in statuses}, (method, path)
