"""Issue 16 item 5: the memory tools the chat and the MCP server share (memory/toolkit.py).

Any arguments a model or an MCP client can send get a result or a `ToolFailure` with words to read,
never another exception, and Redis still answers afterwards."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory.access import Owner
from memory.query import MemoryFilter
from memory.services import add_memory
from memory.toolkit import SERVICE_TOOLS, Tool, ToolContext, ToolFailure
from memory.types import Actor, ActorKind, Scope
from tests.memory_helpers import USER

BOUNDED = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TEXT = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(["\ud83d", "\x00", "|", "@", "{"]), max_size=40
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
FIELDS = ["query", "limit", "text", "type", "memory_id", "message", "last", "messages", "role", "content"]
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool", "nobody"]) | JSON, "content": TEXT | JSON}
)
ARGUMENTS = st.dictionaries(
    st.sampled_from(FIELDS) | TEXT,
    JSON | TEXT | st.lists(MESSAGE, max_size=3),
    max_size=4,
)


def _context() -> ToolContext:
    scope = Scope(user_id="alice", agent_id="app-a", namespace="notes", session_id="app-a/s1")
    return ToolContext(
        scope=scope,
        reach=MemoryFilter.build(user_id="alice", agent_id="app-a", namespaces=["notes"]),
        owner=Owner.app(agent_id="app-a", namespaces=["notes"], user_id="alice"),
        actor=Actor(ActorKind.APP, "api-key:app-a"),
    )


@pytest.mark.parametrize("tool", SERVICE_TOOLS, ids=[t.name for t in SERVICE_TOOLS])
def test_any_arguments_get_a_result_or_a_plain_refusal(tool: Tool[Any], redis_client: Any) -> None:
    known = add_memory(
        text="User keeps bees", scope=Scope(user_id="alice", agent_id="app-a", namespace="notes"), actor=USER
    )

    @BOUNDED
    @given(raw=ARGUMENTS)
    def check(raw: dict[str, Any]) -> None:
        if tool.name == "forget" and raw.get("memory_id") == known.id:
            return  # a real forget is a result; the property is about what else arrives
        try:
            result = tool.call(_context(), raw)
        except ToolFailure as exc:
            assert str(exc).strip(), "a refusal says why"
        else:
            assert isinstance(result, dict)

    check()
    assert redis_client.ping()
