"""Issue 16 acceptance: the OpenAPI document validates, and a Schemathesis run over every operation
(property-based, with a staff key and with an app key) finds no server error and no response that
breaks the document (status, content type, headers, body schema).

Made-up ids only ever reach "not found", so each run starts on real data (memories, one deleted,
a session with messages and data, all of the user "alice" and within the key's reach), and two of
every three positive cases are steered onto it: the real ids in the path, "alice" as the user, the
memory's current version as If-Match, the user id as the erase's confirmation. Negative cases (and
the rest) keep what Schemathesis made. Each by-id operation must get past "not found" at least once.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from memory import working
from memory.selectors import get_memory
from memory.services import add_memory, delete_memory
from memory.types import Actor, ActorKind, MemoryType, Scope
from tests.api_helpers import make_key
from tests.memory_helpers import ANYONE, USER

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Small on purpose: the whole suite has a ten-minute budget (this file: ~40-60 s on a loaded 2-core machine).
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


USER_ID = "alice"
SESSION_ID = "s-real"
# Operations with a memory or session id in the path: each must reach real data at least once.
BY_ID = ("{memory_id}", "{session_id}")


@dataclass
class Seed:
    """What a run starts on, and what its steered cases answered."""

    live: list[str]
    deleted: str
    turn: Iterator[int] = field(default_factory=itertools.count)
    steered: list[int] = field(default_factory=list)

    def steer(self, case: Any) -> bool:
        """Point a positive case at the real data (two of every three: the rest stay as made)."""
        meta = case.meta
        if meta is None or meta.generation.mode.is_negative or next(self.turn) % 3 == 2:
            return False
        path = case.path_parameters
        if "memory_id" in path:
            restore = case.path.endswith("/restore")
            memory_id = self.deleted if restore else self.live[len(self.steered) % len(self.live)]
            case.path_parameters = {**path, "memory_id": memory_id}
            if case.method.upper() == "PATCH":
                current = get_memory(memory_id=memory_id, owner=ANYONE, include_deleted=True)
                case.headers = {**(case.headers or {}), "If-Match": f'"{current.version}"'}
        if "session_id" in path:
            case.path_parameters = {**case.path_parameters, "session_id": SESSION_ID}
        if "user_id" in path:
            case.path_parameters = {**case.path_parameters, "user_id": USER_ID}
            if case.path.endswith("/erase") and isinstance(case.body, dict):
                case.body = {**case.body, "confirm": USER_ID}
        if isinstance(case.query, dict) and "user_id" in case.query:
            case.query = {**case.query, "user_id": USER_ID}
        if isinstance(case.body, dict):  # a session put, a search, a prompt: about alice, in her session
            real = {"user_id": USER_ID, "session_id": SESSION_ID}
            case.body = {**case.body, **{k: v for k, v in real.items() if k in case.body}}
        return True


def _seed(*, agent_id: str, namespace: str, stored_session: str, deleter: Actor) -> Seed:
    scope = Scope(USER_ID, agent_id, namespace)
    live = [
        add_memory(text="Alice likes green tea", scope=scope, actor=USER, topics=["drinks"]).id,
        add_memory(text="Alice ran the Oslo marathon", type=MemoryType.EPISODIC, scope=scope, actor=USER).id,
    ]
    deleted = add_memory(text="Alice had a cat called Miso", scope=scope, actor=USER).id
    delete_memory(memory_id=deleted, owner=ANYONE, actor=deleter)
    working.replace_session(
        session_id=stored_session,
        user_id=USER_ID,
        agent_id=agent_id,
        messages=[working.new_message(role="user", content="I am off to Kyoto in April")],
        data={"trip": "Kyoto"},
        title="Trip",
    )
    return Seed(live=live, deleted=deleted)


@pytest.fixture
def staff_key(db: None, redis_client: Any) -> str:
    return make_key("schemathesis-staff")[1]


@pytest.fixture
def app_key(db: None, redis_client: Any) -> str:
    return make_key("schemathesis-app", role="app", agent_id="fuzz-app", namespaces=["fuzz", "other"])[1]


@pytest.fixture
def staff_seed(staff_key: str, request: pytest.FixtureRequest) -> Iterator[Seed]:
    seed = _seed(agent_id="engram", namespace="default", stored_session=SESSION_ID, deleter=USER)
    yield seed
    _check_reached(seed, request)


@pytest.fixture
def app_seed(app_key: str, request: pytest.FixtureRequest) -> Iterator[Seed]:
    seed = _seed(
        agent_id="fuzz-app",
        namespace="fuzz",
        stored_session=f"fuzz-app/{SESSION_ID}",
        deleter=Actor(ActorKind.APP, "api-key:schemathesis-app"),
    )
    yield seed
    _check_reached(seed, request)


def _check_reached(seed: Seed, request: pytest.FixtureRequest) -> None:
    if any(marker in request.node.name for marker in BY_ID):
        assert any(status != 404 for status in seed.steered), (request.node.name, seed.steered)


def _run(case: Any, seed: Seed, headers: dict[str, str]) -> None:
    steered = seed.steer(case)
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    if steered:
        seed.steered.append(response.status_code)


@schema.parametrize()
@hypothesis_settings
def test_every_operation_with_a_staff_key(case: Any, staff_key: str, staff_seed: Seed) -> None:
    _run(case, staff_seed, {"X-API-Key": staff_key})


@app_schema.parametrize()
@hypothesis_settings
def test_every_operation_with_an_app_key(case: Any, app_key: str, app_seed: Seed) -> None:
    _run(case, app_seed, {"Authorization": f"Bearer {app_key}"})


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
