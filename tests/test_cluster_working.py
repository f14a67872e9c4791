"""The working-memory tests (tests/test_working_memory.py), run again against a local 3-node Redis
Cluster: each session's transactions stay in its slot, the user's lists are written beside them."""

from tests.fixtures_cluster import (
    every_test_on_the_cluster,  # noqa: F401  (overrides _empty_redis)
    test_these_tests_run_on_the_cluster,  # noqa: F401
)
from tests.test_working_memory import *  # noqa: F403  (the same tests, collected here once more)
