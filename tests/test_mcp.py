"""Issue 16 items 3 and 5: the MCP server (the SDK's own client over stdio, over HTTP and in
process), confined by API keys, and the chat's memory tools generated from the same definitions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from asgiref.sync import sync_to_async
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from api.callers import ApiCaller
from api.mcp.http import McpHttpApp, transport_security
from api.mcp.server import build_server
from chat.tools import TOOL_SPECS, function_spec
from core.api_keys import revoke_api_key
from core.embedded_redis import EmbeddedRedis, free_port
from core.outage import UNAVAILABLE_MESSAGE
from core.redis_client import pointed_at
from memory import working
from memory.selectors import get_memory, memory_history
from memory.services import add_memory
from memory.toolkit import CHAT_TOOLS, SERVICE_TOOLS
from memory.types import ActorKind, Scope
from tests.api_helpers import make_key
from tests.fixtures_browser import start_server
from tests.memory_helpers import ANYONE, USER

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db(transaction=True)


def _caller(name: str, **kwargs: Any) -> tuple[ApiCaller, str]:
    api_key, raw = make_key(name, **kwargs)
    return ApiCaller.from_key(api_key), raw


@pytest.fixture
def app_a(transactional_db: None) -> tuple[ApiCaller, str]:
    return _caller("app-a", role="app", agent_id="app-a", namespaces=["notes"])


@pytest.fixture
def app_b(transactional_db: None) -> tuple[ApiCaller, str]:
    return _caller("app-b", role="app", agent_id="app-b", namespaces=["notes"])


@pytest.fixture
def two_namespaces(transactional_db: None) -> tuple[ApiCaller, str]:
    return _caller("two-ns", role="app", agent_id="app-two", namespaces=["n1", "n2"])


@pytest.fixture
def staff(transactional_db: None) -> tuple[ApiCaller, str]:
    return _caller("support", role="staff", agent_id="engram")


def _in_process(caller: ApiCaller) -> Client:
    async def caller_of(ctx: Any) -> ApiCaller:
        return caller

    return Client(build_server(caller_of=caller_of))


def _result(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def _error(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return " ".join(getattr(block, "text", "") for block in result.content)


# --- One definition per tool -------------------------------------------------------------------


def test_the_chat_tool_specs_are_generated_from_the_toolkit_definitions() -> None:
    generated = [
        function_spec(name=t.name, description=t.description, arguments=t.arguments) for t in CHAT_TOOLS
    ]
    assert TOOL_SPECS[: len(CHAT_TOOLS)] == generated
    assert [s["function"]["name"] for s in TOOL_SPECS] == [
        "search_memory",
        "remember",
        "forget",
        "lookup_order",
    ]
    search = TOOL_SPECS[0]["function"]["parameters"]
    assert search["required"] == ["query"] and search["properties"]["limit"]["maximum"] == 20
    assert "title" not in json.dumps(search), "no pydantic titles in what a model reads"


async def test_the_mcp_tools_are_the_same_definitions_plus_where_to_act(
    redis_client: Any, app_a: tuple[ApiCaller, str]
) -> None:
    caller, _ = app_a
    async with _in_process(caller) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert list(listed) == [t.name for t in SERVICE_TOOLS]
    for tool in SERVICE_TOOLS:
        mcp_tool = listed[tool.name]
        assert mcp_tool.description == tool.description
        own = function_spec(name=tool.name, description=tool.description, arguments=tool.arguments)
        for name, schema in own["function"]["parameters"]["properties"].items():
            assert mcp_tool.input_schema["properties"][name] == schema
        assert "user_id" in mcp_tool.input_schema["required"]
    assert "session_id" in listed["read_working_memory"].input_schema["required"]
    assert "session_id" not in listed["search_memory"].input_schema["required"]


# --- In process: confinement, errors, working memory ------------------------------------------


async def test_an_app_key_never_reaches_another_apps_memories(
    redis_client: Any, app_a: tuple[ApiCaller, str], app_b: tuple[ApiCaller, str]
) -> None:
    a_caller, b_caller = app_a[0], app_b[0]
    async with _in_process(a_caller) as a:
        added = _result(
            await a.call_tool("remember", {"user_id": "alice", "text": "User keeps bees in Porto"})
        )
        memory_id = added["remembered"]["id"]
        found = _result(await a.call_tool("search_memory", {"user_id": "alice", "query": "bees Porto"}))
    assert [m["id"] for m in found["memories"]] == [memory_id]
    stored = get_memory(memory_id=memory_id, owner=ANYONE)
    assert (stored.scope.agent_id, stored.scope.namespace) == ("app-a", "notes")
    [added_event] = memory_history(memory_id=memory_id)
    assert (added_event.actor.kind, added_event.actor.id) == (ActorKind.APP, "api-key:app-a")
    # The chat's own memory of the same user is another agent's too.
    chat_memory = add_memory(
        text="User keeps bees at home", scope=Scope(user_id="alice"), actor=added_event.actor
    )
    async with _in_process(b_caller) as b:
        theirs = _result(await b.call_tool("search_memory", {"user_id": "alice", "query": "bees Porto"}))
        forget = await b.call_tool("forget", {"user_id": "alice", "memory_id": memory_id})
        hostile = _result(
            await b.call_tool("search_memory", {"user_id": "alice", "query": "bees) | @agent_id:{app\\-a}"})
        )
        other_ns = await b.call_tool("search_memory", {"user_id": "alice", "query": "bees", "namespace": "x"})
    assert theirs == {"memories": []} and hostile == {"memories": []}
    assert "no such memory" in _error(forget)
    assert "namespace" in _error(other_ns)
    assert get_memory(memory_id=memory_id, owner=ANYONE).text == "User keeps bees in Porto"
    async with _in_process(a_caller) as a:
        mine = _result(await a.call_tool("search_memory", {"user_id": "alice", "query": "bees"}))
        forgotten = _result(await a.call_tool("forget", {"user_id": "alice", "memory_id": memory_id}))
    assert chat_memory.id not in {m["id"] for m in mine["memories"]}
    assert forgotten["forgotten"]["id"] == memory_id


async def test_bad_arguments_are_tool_errors_not_crashes(
    redis_client: Any, app_a: tuple[ApiCaller, str]
) -> None:
    caller, _ = app_a
    async with _in_process(caller) as client:
        errors = [
            await client.call_tool("search_memory", {"user_id": "alice"}),
            await client.call_tool("search_memory", {"user_id": "alice", "query": "   "}),
            await client.call_tool("search_memory", {"user_id": "a,b", "query": "tea"}),
            await client.call_tool("remember", {"user_id": "alice", "text": "x", "type": "message"}),
            await client.call_tool("forget", {"user_id": "alice", "memory_id": "a\x00b"}),
            await client.call_tool("read_working_memory", {"user_id": "alice", "session_id": "nope"}),
            await client.call_tool(
                "write_working_memory", {"user_id": "alice", "session_id": "s1", "messages": []}
            ),
            await client.call_tool("no_such_tool", {}),
        ]
        too_long = [{"role": "user", "content": "fine"}, {"role": "user", "content": "x" * 100_000}]
        errors.append(
            await client.call_tool(
                "write_working_memory", {"user_id": "alice", "session_id": "s2", "messages": too_long}
            )
        )
        still_fine = _result(await client.call_tool("search_memory", {"user_id": "alice", "query": "tea"}))
    words = [_error(e) for e in errors]
    assert "query" in words[0] and "non-empty" in words[1] and "user_id" in words[2]
    assert "type" in words[3] and "no such session" in words[5] and "messages" in words[6]
    assert "characters" in words[8]
    assert working.get_session(session_id="app-a/s2") is None, "a refused batch writes nothing"
    assert still_fine == {"memories": []}


async def test_working_memory_is_read_and_written_per_app_session(
    redis_client: Any, app_a: tuple[ApiCaller, str], app_b: tuple[ApiCaller, str]
) -> None:
    a_caller, b_caller = app_a[0], app_b[0]
    where = {"user_id": "alice", "session_id": "s1"}
    hello = [{"role": "user", "content": "Hi, I am Alice"}, {"role": "assistant", "content": "Hello Alice"}]
    async with _in_process(a_caller) as a:
        written = _result(await a.call_tool("write_working_memory", {**where, "messages": hello}))
        read = _result(await a.call_tool("read_working_memory", where))
        prompt = _result(await a.call_tool("memory_prompt", {**where, "message": "What is my name?"}))
    assert len(written["added"]) == 2
    assert [(m["role"], m["content"]) for m in read["messages"]] == [(m["role"], m["content"]) for m in hello]
    assert [m["content"] for m in prompt["messages"][1:]] == [
        "Hi, I am Alice",
        "Hello Alice",
        "What is my name?",
    ]
    assert prompt["tokens"]["total"] > 0
    session = working.get_session(session_id="app-a/s1")
    assert session is not None and (session.user_id, session.agent_id) == ("alice", "app-a")
    # The same id is another session for app B: A's messages stay A's.
    async with _in_process(b_caller) as b:
        empty = await b.call_tool("read_working_memory", where)
        _result(await b.call_tool("write_working_memory", {**where, "messages": hello[:1]}))
    assert "no such session" in _error(empty)
    assert len(working.get_messages(session_id="app-a/s1")) == 2
    assert len(working.get_messages(session_id="app-b/s1")) == 1


async def test_a_redis_outage_is_a_plain_tool_error_and_a_503_over_http(
    redis_client: Any, app_a: tuple[ApiCaller, str]
) -> None:
    caller, raw = app_a
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with pointed_at(nowhere, channel_prefix="mcp:asgi"):
        async with _in_process(caller) as client:
            failed = await client.call_tool("search_memory", {"user_id": "alice", "query": "tea"})
        scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": [(b"x-api-key", raw.encode())]}
        await McpHttpApp()(scope, receive, send)
    assert _error(failed).endswith(UNAVAILABLE_MESSAGE)
    assert sent[0]["status"] == 503 and (b"retry-after", b"5") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["detail"] == UNAVAILABLE_MESSAGE


async def test_the_http_key_check_closes_stale_db_connections_as_a_django_request_does(
    redis_client: Any, app_a: tuple[ApiCaller, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/mcp bypasses Django's request cycle, whose signals close a connection the database dropped:
    the key's lookup (and its last_used_at write) must do that itself, before and after."""
    import channels.db

    import api.auth

    events: list[str] = []
    real_close, real_lookup = channels.db.close_old_connections, api.auth.authenticate_api_key

    def close() -> None:
        events.append("close")
        real_close()

    def lookup(*, raw_key: str) -> Any:
        events.append("lookup")
        return real_lookup(raw_key=raw_key)

    monkeypatch.setattr(channels.db, "close_old_connections", close)
    monkeypatch.setattr(api.auth, "authenticate_api_key", lookup)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    unknown = "eng_" + "x" * 40
    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": [(b"x-api-key", unknown.encode())]}
    await McpHttpApp()(scope, receive, send)
    assert sent[0]["status"] == 401
    assert events == ["close", "lookup", "close"]


async def test_a_staff_key_reaches_every_agent_and_uses_session_ids_as_stored(
    redis_client: Any, app_a: tuple[ApiCaller, str], staff: tuple[ApiCaller, str]
) -> None:
    async with _in_process(app_a[0]) as a:
        added = _result(
            await a.call_tool("remember", {"user_id": "alice", "text": "User keeps bees in Porto"})
        )
    working.ensure_session(session_id="chat-1", user_id="alice")
    working.append_message(session_id="chat-1", role="user", content="I keep bees")
    async with _in_process(staff[0]) as client:
        found = _result(await client.call_tool("search_memory", {"user_id": "alice", "query": "bees Porto"}))
        read = _result(
            await client.call_tool("read_working_memory", {"user_id": "alice", "session_id": "chat-1"})
        )
        other_user = await client.call_tool("read_working_memory", {"user_id": "bob", "session_id": "chat-1"})
    assert [m["id"] for m in found["memories"]] == [added["remembered"]["id"]]
    assert [m["content"] for m in read["messages"]] == ["I keep bees"]
    assert "no such session" in _error(other_user), "the session is named with its user"
    async with _in_process(app_a[0]) as a:
        chats = await a.call_tool("read_working_memory", {"user_id": "alice", "session_id": "chat-1"})
    assert "no such session" in _error(chats), "an app never reads the chat's sessions"


async def test_memory_prompt_draws_on_every_namespace_of_the_key_and_staff_on_every_agent(
    redis_client: Any, two_namespaces: tuple[ApiCaller, str], staff: tuple[ApiCaller, str]
) -> None:
    """The MCP prompt has the rule of the REST and AMS prompts (`memory.prompt.prompt_in_reach`):
    what the caller's own search finds, not only the key's first namespace or its own agent."""
    two = two_namespaces[0]
    add_memory(
        text="The user's favourite colour is teal",
        scope=Scope("alice", agent_id="app-two", namespace="n2"),
        actor=USER,
    )
    question = {"user_id": "alice", "message": "what is my favourite colour?"}
    async with _in_process(two) as client:
        found = _result(
            await client.call_tool("search_memory", {"user_id": "alice", "query": "favourite colour"})
        )
        prompt = _result(await client.call_tool("memory_prompt", question))
        only_n1 = _result(await client.call_tool("memory_prompt", {**question, "namespace": "n1"}))
    assert [m["text"] for m in found["memories"]] == ["The user's favourite colour is teal"]
    assert [m["text"] for m in prompt["memories"]] == ["The user's favourite colour is teal"]
    assert only_n1["memories"] == [], "a namespace named narrows it"
    async with _in_process(staff[0]) as client:
        support = _result(await client.call_tool("memory_prompt", question))
    assert [m["text"] for m in support["memories"]] == ["The user's favourite colour is teal"], (
        "a staff key's prompt reaches every agent, as its search does"
    )


# --- Over stdio: `manage.py mcp` --------------------------------------------------------------


def _server_env(redis_server: EmbeddedRedis) -> dict[str, str]:
    from django.conf import settings

    return {
        **os.environ,
        "DEBUG": "1",
        "REDIS_URL": redis_server.url,
        "DATABASE_PATH": str(settings.DATABASES["default"]["NAME"]),
    }


def _run_mcp_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "mcp", *args],
        cwd=ROOT,
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_the_stdio_command_refuses_a_missing_or_wrong_key_in_one_line(
    redis_client: Any, redis_server: EmbeddedRedis
) -> None:
    api_key, raw = make_key("revoked-key")
    revoke_api_key(key_id=api_key.pk)
    env = {k: v for k, v in _server_env(redis_server).items() if k != "ENGRAM_API_KEY"}
    for extra_env, args in [({}, ()), ({"ENGRAM_API_KEY": "eng_" + "x" * 40}, ()), ({}, ("--key", raw))]:
        done = _run_mcp_command({**env, **extra_env}, *args)
        assert done.returncode == 1
        assert done.stdout == "", "nothing but protocol on stdout"
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "API key" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
async def test_over_stdio_the_sdk_client_lists_the_tools_and_finds_what_it_added(
    redis_client: Any, redis_server: EmbeddedRedis, app_a: tuple[ApiCaller, str]
) -> None:
    _, raw = app_a
    params = StdioServerParameters(
        command=sys.executable,
        args=["manage.py", "mcp"],
        env={**_server_env(redis_server), "ENGRAM_API_KEY": raw},
        cwd=str(ROOT),
    )
    async with Client(params, read_timeout_seconds=120) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        added = _result(
            await client.call_tool("remember", {"user_id": "alice", "text": "User's cat is called Miso"})
        )
        found = _result(await client.call_tool("search_memory", {"user_id": "alice", "query": "cat Miso"}))
        await sync_to_async(revoke_api_key)(key_id=app_a[0].key_id)
        revoked = await client.call_tool("search_memory", {"user_id": "alice", "query": "cat Miso"})
    assert names == [t.name for t in SERVICE_TOOLS]
    [hit] = found["memories"]
    assert hit["id"] == added["remembered"]["id"] and hit["text"] == "User's cat is called Miso"
    assert 0 < hit["score"] <= 1
    assert "no longer valid" in _error(revoked), "a key revoked while the server runs stops working"


# --- Over streamable HTTP: /mcp on a real daphne -----------------------------------------------


@pytest.fixture
def daphne_url(transactional_db: None, redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[str]:
    from django.conf import settings

    server = start_server(
        redis_url=redis_server.url, db_path=settings.DATABASES["default"]["NAME"], env={}, log_dir=tmp_path
    )
    try:
        yield server.url
    finally:
        server.stop()


def _http_client(url: str, headers: dict[str, str], *, mode: Any = "auto") -> Client:
    """The SDK's client; mode "legacy" speaks the 2025 handshake older clients use."""
    transport = streamable_http_client(
        f"{url}/mcp", http_client=httpx2.AsyncClient(headers=headers, timeout=120)
    )
    return Client(transport, mode=mode)


@pytest.mark.slow
async def test_over_http_a_key_is_needed_and_the_sdk_client_round_trips_a_search(
    redis_client: Any, daphne_url: str, app_a: tuple[ApiCaller, str], app_b: tuple[ApiCaller, str]
) -> None:
    raw_a, raw_b = app_a[1], app_b[1]
    async with httpx2.AsyncClient(timeout=30) as http:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        for headers in ({}, {"X-API-Key": "eng_" + "x" * 40}, {"Authorization": "Bearer nope"}):
            refused = await http.post(f"{daphne_url}/mcp", json=ping, headers=headers)
            assert refused.status_code == 401
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["status"] == 401
    async with _http_client(daphne_url, {"X-API-Key": raw_a}) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        added = _result(
            await client.call_tool("remember", {"user_id": "alice", "text": "User's cat is called Miso"})
        )
        found = _result(await client.call_tool("search_memory", {"user_id": "alice", "query": "cat Miso"}))
    assert names == [t.name for t in SERVICE_TOOLS]
    [hit] = found["memories"]
    assert hit["id"] == added["remembered"]["id"] and 0 < hit["score"] <= 1
    async with _http_client(daphne_url, {"Authorization": f"Bearer {raw_b}"}, mode="legacy") as client:
        theirs = _result(await client.call_tool("search_memory", {"user_id": "alice", "query": "cat Miso"}))
    assert theirs == {"memories": []}
    async with _http_client(daphne_url, {"X-API-Key": raw_a}, mode="legacy") as client:
        again = _result(await client.call_tool("search_memory", {"user_id": "alice", "query": "cat Miso"}))
    assert [m["id"] for m in again["memories"]] == [hit["id"]]
    [event] = memory_history(memory_id=hit["id"])
    assert event.actor.id == "api-key:app-a"


_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
_JSON_AND_SSE = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def limited_key(transactional_db: None) -> str:
    return make_key("limited", role="app", agent_id="app-c", namespaces=["notes"], rate_limit_per_minute=2)[1]


@pytest.mark.slow
async def test_over_http_no_session_to_share_foreign_hosts_refused_and_the_rate_limit_holds(
    redis_client: Any, daphne_url: str, app_a: tuple[ApiCaller, str], limited_key: str
) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        key = {"X-API-Key": app_a[1], **_JSON_AND_SSE}
        started = await http.post(f"{daphne_url}/mcp", json=_INITIALIZE, headers=key)
        assert started.status_code == 200, started.text
        # Stateless: no session id, so there is none another key could reuse.
        assert "mcp-session-id" not in started.headers
        assert started.json()["result"]["serverInfo"]["name"] == "engram"
        rebound = await http.post(
            f"{daphne_url}/mcp", json=_INITIALIZE, headers={**key, "Host": "evil.example"}
        )
        assert rebound.status_code == 421
        foreign = await http.post(
            f"{daphne_url}/mcp", json=_INITIALIZE, headers={**key, "Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        limited = {"Authorization": f"Bearer {limited_key}", **_JSON_AND_SSE}
        answers = [await http.post(f"{daphne_url}/mcp", json=_INITIALIZE, headers=limited) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert int(answers[2].headers["retry-after"]) >= 1
        assert answers[2].json()["status"] == 429


def test_transport_security_follows_the_sites_hosts_and_origins(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["engram.example", ".corp.example"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example", "https://*.corp.example"]
    checks = transport_security()
    assert checks.enable_dns_rebinding_protection
    assert checks.allowed_hosts == ["engram.example", "engram.example:*", "corp.example", "corp.example:*"]
    assert "https://app.example" in checks.allowed_origins
    assert "https://engram.example" in checks.allowed_origins
    assert not any("*." in origin for origin in checks.allowed_origins)
    settings.ALLOWED_HOSTS = ["*"]
    assert not transport_security().enable_dns_rebinding_protection
