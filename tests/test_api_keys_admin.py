"""Issue 16 item 2: staff create, list and revoke API keys in the inspector (with their own
permission; the key shown once) and with `manage.py api_key`."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from core.api_keys import authenticate_api_key
from core.models import ApiKey
from tests.api_helpers import ApiClient, make_key

pytestmark = pytest.mark.django_db

KEYS = "/inspector/api-keys/"
RAW = re.compile(r"eng_[A-Za-z0-9_-]{40}")


def _staff(*codenames: str, name: str = "kira") -> Any:
    user = get_user_model().objects.create_user(name, password="pw-kira-12345", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def _client(user: Any, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def _form(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "support-bot",
        "role": "app",
        "agent_id": "bot",
        "namespaces": "ns1, ns2",
        "rate_limit_per_minute": "120",
        **overrides,
    }


def test_the_keys_page_needs_its_own_permission(redis_client) -> None:
    assert Client().get(KEYS).status_code == 302  # to the login page
    inspector_only = _client(_staff("view_memories", "change_memories", name="ines"))
    denied = inspector_only.get(KEYS)
    assert denied.status_code == 403 and b"core.manage_api_keys" in denied.content
    assert inspector_only.post("/inspector/api-keys/create", _form()).status_code == 403
    assert not ApiKey.objects.exists()
    customer = get_user_model().objects.create_user("cus", password="pw-cus-12345")
    customer.user_permissions.add(Permission.objects.get(codename="manage_api_keys"))
    assert _client(customer).get(KEYS).status_code == 403, "not staff: the permission alone is not enough"


def test_a_key_is_shown_once_and_then_only_its_prefix(redis_client) -> None:
    kira = _staff("manage_api_keys")
    client = _client(kira)
    created = client.post("/inspector/api-keys/create", _form())
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    [raw] = RAW.findall(created.content.decode())
    api_key = authenticate_api_key(raw_key=raw)
    assert api_key is not None and api_key.created_by == kira
    assert (api_key.role, api_key.agent_id, api_key.namespaces, api_key.rate_limit_per_minute) == (
        "app",
        "bot",
        ["ns1", "ns2"],
        120,
    )
    listed = client.get(KEYS).content.decode()
    assert raw not in listed and api_key.prefix in listed and "support-bot" in listed
    assert ApiClient(raw).get("/api/v1/users/alice/counts").status_code == 200


def test_bad_input_on_the_form_is_shown_and_creates_nothing(redis_client) -> None:
    client = _client(_staff("manage_api_keys"))
    make_key("taken")
    for bad in ({"namespaces": ""}, {"agent_id": "a/b"}, {"name": "taken"}, {"rate_limit_per_minute": "0"}):
        answer = client.post("/inspector/api-keys/create", _form(**bad))
        assert answer.status_code == 400, bad
        assert not RAW.search(answer.content.decode())
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["taken"]


def test_names_are_escaped_on_the_page(redis_client) -> None:
    make_key("<script>alert(1)</script>")
    page = _client(_staff("manage_api_keys")).get(KEYS).content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_revoking_needs_csrf_and_then_the_key_opens_nothing(redis_client) -> None:
    api_key, raw = make_key("doomed")
    kira = _staff("manage_api_keys")
    revoke = f"/inspector/api-keys/{api_key.pk}/revoke"
    assert _client(kira, csrf=True).post(revoke).status_code == 403, "no CSRF token, no revoke"
    assert ApiClient(raw).get("/api/v1/users/alice/counts").status_code == 200
    done = _client(kira).post(revoke, follow=True)
    assert done.status_code == 200 and "Revoked the key" in done.content.decode()
    assert ApiClient(raw).get("/api/v1/users/alice/counts").status_code == 401
    assert _client(kira).post("/inspector/api-keys/99999/revoke").status_code == 302  # says it is gone
    assert _client(kira).get(revoke).status_code == 405


def test_the_management_command_creates_lists_and_revokes(redis_client) -> None:
    out = io.StringIO()
    call_command("api_key", "create", "cli-app", "--agent-id", "bot", "--namespace", "ns1", stdout=out)
    [raw] = RAW.findall(out.getvalue())
    assert ApiClient(raw).get("/api/v1/users/alice/counts").status_code == 200
    listed = io.StringIO()
    call_command("api_key", "list", stdout=listed)
    assert "cli-app" in listed.getvalue() and raw not in listed.getvalue() and raw[:8] in listed.getvalue()
    call_command("api_key", "revoke", "cli-app", stdout=io.StringIO())
    assert ApiClient(raw).get("/api/v1/users/alice/counts").status_code == 401
    with pytest.raises(CommandError, match="no API key"):
        call_command("api_key", "revoke", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="namespace"):
        call_command(
            "api_key", "create", "bad", "--agent-id", "bot", "--namespace", "a,b", stdout=io.StringIO()
        )


def test_a_staff_key_needs_the_change_permission_too(redis_client) -> None:
    """Managing keys alone must not mint a key that erases, pins and locks through the API what the
    inspector would not let this member touch."""
    keys_only = _client(_staff("manage_api_keys", "view_memories"))
    page = keys_only.get(KEYS).content.decode()
    assert 'value="app"' in page and 'value="staff"' not in page
    refused = keys_only.post("/inspector/api-keys/create", _form(role="staff"))
    assert refused.status_code == 400 and not RAW.search(refused.content.decode())
    assert not ApiKey.objects.exists()
    assert keys_only.post("/inspector/api-keys/create", _form()).status_code == 200  # an app key is fine
    both = _client(_staff("manage_api_keys", "change_memories", name="cora"))
    assert 'value="staff"' in both.get(KEYS).content.decode()
    created = both.post("/inspector/api-keys/create", _form(name="ops", role="staff"))
    [raw] = RAW.findall(created.content.decode())
    staff_key = authenticate_api_key(raw_key=raw)
    assert staff_key is not None and staff_key.role == "staff"


def test_the_command_runs_as_the_operator_and_creates_staff_keys(redis_client) -> None:
    out = io.StringIO()
    call_command("api_key", "create", "ops-cli", "--role", "staff", stdout=out)
    assert ApiKey.objects.get(name="ops-cli").role == "staff"


def test_a_name_longer_than_the_column_is_refused_with_a_message(redis_client) -> None:
    from core.api_keys import ApiKeyError

    limit = ApiKey._meta.get_field("name").max_length
    assert limit is not None
    with pytest.raises(ApiKeyError, match=f"longer than {limit} characters"):
        make_key("n" * (limit + 1))
    assert make_key("n" * limit)[0].name == "n" * limit
