from django.test import Client


def test_home_page_links_to_chat_and_inspector(client: Client):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'href="/chat/"' in body
    assert 'href="/inspector/"' in body
    assert "Offline mode" in body or "offline mode" in body


def test_healthz_reports_redis_modules_embedding_and_llm(client: Client):
    response = client.get("/healthz")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok"
    assert report["redis"]["reachable"] is True
    assert report["redis"]["version"].startswith("8.")
    names = {module["name"] for module in report["redis"]["modules"]}
    assert {"search", "ReJSON"} <= names
    assert report["embedding"] == {"provider": "local", "model": "all-MiniLM-L6-v2", "dims": 384}
    assert report["llm"]["mode"] == "offline"
    assert report["index"] is None
    assert report["worker"] == {"alive": False, "workers": []}


def test_healthz_sees_a_worker_heartbeat(client: Client):
    from core.workers import record_heartbeat

    record_heartbeat(worker_id="w-1")
    worker = client.get("/healthz").json()["worker"]
    assert worker["alive"] is True
    assert worker["workers"][0]["id"] == "w-1"


def test_healthz_reports_an_unreachable_redis(client: Client, settings):
    from core.embedded_redis import free_port
    from core.redis_client import reset_clients

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    try:
        response = client.get("/healthz")
    finally:
        reset_clients()
    assert response.status_code == 503
    assert response.json()["redis"]["reachable"] is False


def test_healthz_reports_an_endpoint_llm(client: Client, settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    settings.CHAT_MODEL = "llama3"
    llm = client.get("/healthz").json()["llm"]
    assert llm == {"mode": "endpoint", "model": "llama3", "endpoint": "http://127.0.0.1:9/v1"}


def test_inspector_requires_staff(client: Client, django_user_model):
    assert client.get("/inspector/").status_code == 302, "anonymous: to the login page"
    user = django_user_model.objects.create_user("alice", password="pw-alice-123")
    client.force_login(user)
    assert client.get("/inspector/").status_code == 403, "a plain user is refused"
    user.is_superuser = user.is_staff = True
    user.save()
    assert client.get("/inspector/").status_code == 200
