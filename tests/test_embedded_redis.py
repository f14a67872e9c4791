import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from core.embedded_redis import (
    EmbeddedRedis,
    EmbeddedRedisError,
    QueryEngineMissing,
    check_query_engine,
    free_port,
    loaded_modules,
    redis_server_binary,
)

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
    with pytest.raises(QueryEngineMissing) as excinfo:
        check_query_engine(redis.Redis.from_url(plain_redis), plain_redis)
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
