"""Test-wide fixtures: one embedded Redis (real, with the Query Engine) for the whole session.

Each test starts from an empty database 0 (RediSearch indexes live there only), so tests do not
depend on each other's keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.embedded_redis import EmbeddedRedis, free_port
from core.redis_client import get_redis, pointed_at

pytest_plugins = ["tests.fixtures_llm", "tests.fixtures_browser", "tests.fixtures_cluster"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_collection_patches = pytest.MonkeyPatch()


class _EveryCollectedTestReports:
    """Under xdist, the controller checks that every collected test reported. One parallel run
    (session 8, loaded machine) ended "1160 passed", exit 0, with 1,226 collected and no error:
    a run that silently leaves tests out must fail, and name them."""

    def __init__(self) -> None:
        self.reported: set[str] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.reported.add(report.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        scheduler = getattr(session.config.pluginmanager.getplugin("dsession"), "sched", None)
        collected = getattr(scheduler, "collection", None) or []
        if session.shouldstop or exitstatus == pytest.ExitCode.INTERRUPTED:
            return  # -x, --maxfail or Ctrl-C: tests left out on purpose
        missing = [nodeid for nodeid in collected if nodeid not in self.reported]
        if missing:
            reporter = session.config.pluginmanager.getplugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"{len(missing)} collected tests never reported:", red=True)
                for nodeid in missing:
                    reporter.write_line(f"  {nodeid}", red=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    """No embedder warm-up thread in the test process. Importing config.asgi starts one, and torch
    calls ast.parse while it loads; Python 3.11 counts AST recursion per interpreter, not per
    thread, so that thread racing pytest's assertion rewriting of the next test module failed
    collection with "SystemError: AST constructor recursion depth mismatch" (seen under xdist,
    where two workers load the CPU). The model still loads on first use, and servers that tests
    start as subprocesses still warm up."""
    import core.embeddings

    _collection_patches.setattr(core.embeddings, "warm_up_in_background", lambda: None)
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_EveryCollectedTestReports(), "every-collected-test-reports")


def pytest_unconfigure(config: pytest.Config) -> None:
    _collection_patches.undo()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(port=free_port(), data_dir=Path(tmp_path_factory.mktemp("redis")))
    with server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def _use_test_redis(redis_server: EmbeddedRedis) -> Iterator[None]:
    """Point the whole product (engine, channel layer) at the test server."""
    with pointed_at(redis_server.url, channel_prefix="engram:asgi"):
        yield


@pytest.fixture(autouse=True)
def _empty_redis(_use_test_redis: None) -> Iterator[redis.Redis]:
    from memory.index import forget_index_cache
    from memory.term_stats import forget_term_counts

    client = get_redis()
    client.flushall()
    forget_index_cache()
    forget_term_counts()
    yield client


@pytest.fixture
def redis_client(_empty_redis: redis.Redis) -> redis.Redis:
    return _empty_redis
