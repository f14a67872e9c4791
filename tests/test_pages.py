import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_home_page_links_to_chat_and_shows_the_inspector_to_staff_only(client: Client, django_user_model):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'href="/chat/"' in body
    # The inspector answers 403 to everyone but staff, so only staff get its card (issue 14).
    assert 'href="/inspector/"' not in body and "Memory inspector" not in body
    assert "Offline mode" in body or "offline mode" in body
    client.force_login(django_user_model.objects.create_user("plain", password="pw-plain-12345"))
    assert "Memory inspector" not in client.get("/").content.decode()
    client.force_login(django_user_model.objects.create_user("boss", password="pw-boss-12345", is_staff=True))
    staff_body = client.get("/").content.decode()
    assert 'href="/inspector/"' in staff_body and "Memory inspector" in staff_body


def _keyspace(client) -> dict[bytes, tuple[bytes, bytes | None]]:
    """Every key with its type and serialised value: any write shows up as a difference."""
    return {k: (client.type(k), client.dump(k)) for k in client.keys("*")}


def _seed_status_data(redis_client) -> None:
    """A worker that beat long ago (the old report pruned it) and no turn stream yet (it created one)."""
    import time

    from core.workers import record_heartbeat

    record_heartbeat(worker_id="host-a-4242", now=time.time() - 3600)
    record_heartbeat(worker_id="host-b-777")
    redis_client.set("engram:unrelated", "x")


def test_public_healthz_says_only_ok_and_writes_nothing(client: Client, redis_client, settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    _seed_status_data(redis_client)
    before, size = _keyspace(redis_client), redis_client.dbsize()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    body = response.content.decode()
    version = redis_client.info("server")["redis_version"]
    for secret in (version, "search", "ReJSON", "host-b-777", "4242", "127.0.0.1:9", "all-MiniLM", "pending"):
        assert secret not in body
    assert client.head("/healthz").status_code == 200, "load balancers probe with HEAD too"
    assert redis_client.dbsize() == size
    assert _keyspace(redis_client) == before
    assert "sessionid" not in response.cookies


def test_public_healthz_is_503_degraded_without_redis(client: Client, settings):
    from core.embedded_redis import free_port
    from core.redis_client import reset_clients

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    try:
        response = client.get("/healthz")
    finally:
        reset_clients()
    assert response.status_code == 503
    assert response.json() == {"status": "degraded"}


def _staff(django_user_model, *, perm: bool = True):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("sam", password="pw-sam-12345", is_staff=True)
    if perm:
        user.user_permissions.add(Permission.objects.get(codename="view_memories"))
    return user


@pytest.mark.parametrize("url", ["/inspector/status/", "/inspector/status.json"])
def test_status_page_needs_staff(client: Client, django_user_model, url: str):
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    client.force_login(django_user_model.objects.create_user("alice", password="pw-alice-12345"))
    assert client.get(url).status_code == 403, "a customer account"
    client.force_login(_staff(django_user_model, perm=False))
    assert client.get(url).status_code == 403, "staff without the inspector's view permission"


def test_status_page_shows_staff_the_details(client: Client, django_user_model, redis_client, settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    settings.CHAT_MODEL = "llama3"
    _seed_status_data(redis_client)
    client.force_login(_staff(django_user_model))
    version = redis_client.info("server")["redis_version"]

    page = client.get("/inspector/status/")
    assert page.status_code == 200
    body = page.content.decode()
    for detail in (
        version,
        "search",
        "ReJSON",
        "host-b-777",
        "http://127.0.0.1:9/v1",
        "llama3",
        "all-MiniLM-L6-v2",
    ):
        assert detail in body
    assert 'href="/inspector/status.json"' in body

    report = client.get("/inspector/status.json").json()
    assert report["status"] == "ok"
    assert report["redis"]["reachable"] is True and report["redis"]["version"] == version
    assert {"search", "ReJSON"} <= {m["name"] for m in report["redis"]["modules"]}
    assert report["embedding"] == {"provider": "local", "model": "all-MiniLM-L6-v2", "dims": 384}
    assert report["llm"] == {"mode": "endpoint", "model": "llama3", "endpoint": "http://127.0.0.1:9/v1"}
    assert report["index"] is None
    assert report["worker"]["alive"] is True
    assert [w["id"] for w in report["worker"]["workers"]] == ["host-b-777"], "the long-silent one is pruned"
    assert report["extraction"]["pending"] == 0


def test_status_page_reports_an_unreachable_redis(client: Client, django_user_model, settings):
    from core.embedded_redis import free_port
    from core.redis_client import reset_clients

    client.force_login(_staff(django_user_model))
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    try:
        response = client.get("/inspector/status.json")
        page = client.get("/inspector/status/")
    finally:
        reset_clients()
    assert response.status_code == 503 and page.status_code == 503
    report = response.json()
    assert report["redis"]["reachable"] is False
    assert report["index"] is None and report["extraction"] is None
    assert "Redis does not answer" in page.content.decode()


def test_inspector_requires_staff(client: Client, django_user_model):
    assert client.get("/inspector/").status_code == 302, "anonymous: to the login page"
    user = django_user_model.objects.create_user("alice", password="pw-alice-123")
    client.force_login(user)
    assert client.get("/inspector/").status_code == 403, "a plain user is refused"
    user.is_superuser = user.is_staff = True
    user.save()
    assert client.get("/inspector/").status_code == 200
