import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from core.embedded_redis import EmbeddedRedis, EmbeddedRedisError, free_port, redis_server_binary
from core.health import system_status
from core.redis_check import RedisUnsuitable, check_redis, loaded_modules, parse_module_list, redis_problems
from core.redis_client import pointed_at

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_starts_answers_with_modules_and_stops_cleanly(tmp_path):
    server = EmbeddedRedis(port=free_port(), data_dir=tmp_path)
    server.start()
    assert server.process is not None
    pid = server.process.pid
    client = redis.Redis.from_url(server.url)
    assert client.ping()
    modules = loaded_modules(client)
    assert {"search", "ReJSON"} <= set(modules)
    assert client.info("server")["tcp_port"] == server.port
    client.close()
    server.stop()
    assert not _alive(pid)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_connect_timeout=0.3).ping()


def test_data_survives_a_restart(tmp_path):
    port = free_port()
    with EmbeddedRedis(port=port, data_dir=tmp_path) as server:
        redis.Redis.from_url(server.url).set("engram:persist", "kept")
    assert any(tmp_path.glob("appendonlydir/*.aof")), "AOF files are written to the data dir"
    with EmbeddedRedis(port=port, data_dir=tmp_path) as server:
        assert redis.Redis.from_url(server.url).get("engram:persist") == b"kept"


def test_refuses_a_port_that_is_taken(redis_server, tmp_path):
    with pytest.raises(EmbeddedRedisError, match="already answers"):
        EmbeddedRedis(port=redis_server.port, data_dir=tmp_path).start()


@pytest.fixture
def plain_redis(tmp_path):
    """A real Redis with no modules: what a user gets from a stock redis-server."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(redis_server_binary()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            import time

            time.sleep(0.05)
    yield url
    client.close()
    process.terminate()
    process.wait(timeout=10)


def test_query_engine_check_names_the_missing_module(plain_redis):
    with pytest.raises(RedisUnsuitable) as excinfo:
        check_redis(redis.Redis.from_url(plain_redis), plain_redis)
    message = str(excinfo.value)
    assert "'search'" in message
    assert "Redis 8" in message and "Redis Stack" in message


def test_startup_fails_clearly_against_redis_without_search(plain_redis, tmp_path):
    env = {**os.environ, "REDIS_URL": plain_redis, "DEBUG": "1", "ENGRAM_STATE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "run_engram"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "has no 'search' module" in result.stderr


def test_the_embedded_redis_has_everything_engram_needs(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    check_redis(client, redis_server.url)
    version = client.info("server")["redis_version"]
    assert redis_problems(modules=loaded_modules(client), redis_version=version) == []
    client.close()


# MODULE LIST as redis-py returns it: RESP2 (a list of flat name/value lists) or RESP3 (maps).
RESP2_REPLY = [[b"name", b"ReJSON", b"ver", 20803, b"path", b"", b"args", []]]
RESP3_REPLY = [{b"name": b"search", b"ver": 21005, b"path": b"", b"args": []}]


def test_module_list_replies_parse_in_both_protocols():
    assert parse_module_list(RESP2_REPLY) == {"ReJSON": 20803}
    assert parse_module_list(RESP3_REPLY) == {"search": 21005}
    assert parse_module_list([]) == {}


def test_a_missing_query_engine_is_named():
    [problem] = redis_problems(modules=parse_module_list(RESP2_REPLY), redis_version="8.2.3")
    assert "no 'search' module" in problem and "RediSearch" in problem


def test_an_old_query_engine_is_named_with_its_version():
    [problem] = redis_problems(modules={"search": 20813}, redis_version="7.4.1")
    assert "version 2.8" in problem and "2.10 or newer" in problem
    assert redis_problems(modules={"search": 21000}, redis_version="7.4.0") == []


def test_a_redis_without_hexpire_is_named():
    [problem] = redis_problems(modules={"search": 21005}, redis_version="7.2.5")
    assert "Redis 7.2.5" in problem and "HEXPIRE" in problem
    both = redis_problems(modules={}, redis_version="6.2.14")
    assert len(both) == 2


def test_manage_py_check_names_the_missing_module(plain_redis):
    result = _manage(["check"], plain_redis)
    assert result.returncode != 0
    assert "core.E001" in result.stderr and "has no 'search' module" in result.stderr
    assert "--skip-checks" in result.stderr  # database-only commands still have a way to run


def test_the_worker_refuses_to_start_against_redis_without_search(plain_redis):
    result = _manage(["memory_worker"], plain_redis)
    assert result.returncode != 0
    assert "has no 'search' module" in result.stderr


def test_the_status_page_report_names_what_redis_lacks(plain_redis):
    with pointed_at(plain_redis, channel_prefix="engram:asgi"):
        report = system_status()
    assert report["status"] == "degraded"
    [problem] = report["redis"]["problems"]
    assert "no 'search' module" in problem


def _manage(args: list[str], redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "DEBUG": "1"}
    try:
        command = [sys.executable, "manage.py", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"manage.py {' '.join(args)} kept running against a Redis without search: {exc}")


@pytest.mark.django_db
def test_the_status_page_says_degraded_and_no_index_without_search(plain_redis, client, django_user_model):
    from inspector.selectors import status_report
    from tests.test_pages import _staff

    client.force_login(_staff(django_user_model))
    with pointed_at(plain_redis, channel_prefix="engram:asgi"):
        report = status_report()
        page = client.get("/inspector/status/")
        data = client.get("/inspector/status.json")
    assert (report["status"], report["index"]) == ("degraded", None)
    assert page.status_code == 200 and "no &#x27;search&#x27; module" in page.content.decode()
    assert "this Redis cannot hold one" in page.content.decode()
    assert data.status_code == 200 and data.json()["index"] is None
