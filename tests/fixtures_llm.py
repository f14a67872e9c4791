"""Pytest plugin: the `llm_server` fixture, a scripted OpenAI-compatible endpoint per test.

Registered from tests/conftest.py with `pytest_plugins = ["tests.fixtures_llm"]`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devtools.llm_server import LLMServer


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    """A running `LLMServer` on 127.0.0.1; point clients at `llm_server.base_url`.

    It is stopped after the test (threads joined, sockets closed). If the scripting itself went
    wrong (a responder raised, a reply was queued for the wrong endpoint), the test fails at
    teardown with the reason, since the client only saw an HTTP 500.
    """
    server = LLMServer()
    with server:
        yield server
    if server.errors:
        pytest.fail("scripted LLM server: " + "; ".join(server.errors), pytrace=False)


@pytest.fixture
def product_llm(llm_server: LLMServer, settings: Any) -> LLMServer:
    """The product's chat and extraction model is the scripted server: no client retries, 5 s timeout."""
    settings.OPENAI_BASE_URL = llm_server.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_TIMEOUT_SECONDS = 5
    return llm_server
