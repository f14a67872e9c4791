"""The long-term memory tests (tests/test_memory_records.py: writes, their history, versions,
soft delete and restore, TTLs, search), run again against a local 3-node Redis Cluster: the
memory tier lives in one hash-tag slot, so each of its transactions and its index sit on one shard."""

from tests.fixtures_cluster import (
    every_test_on_the_cluster,  # noqa: F401  (overrides _empty_redis)
    test_these_tests_run_on_the_cluster,  # noqa: F401
)
from tests.test_memory_records import *  # noqa: F403  (the same tests, collected here once more)
