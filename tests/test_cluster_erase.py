"""Erase and identity moves (tests/test_erase_and_identity.py) run again against a local 3-node
Redis Cluster: the memory tier is one slot, the sessions and the user's lists sit in others, and
each step keeps to one slot in an order a kill cannot make lose anything."""

from tests.fixtures_cluster import (
    every_test_on_the_cluster,  # noqa: F401  (overrides _empty_redis)
    test_these_tests_run_on_the_cluster,  # noqa: F401
)
from tests.test_erase_and_identity import *  # noqa: F403  (the same tests, collected here once more)
