"""Working memory as Agent Memory Server serves it: list, get, put (a whole replace) and delete a
session. Sessions are the key's own (ApiCaller.session_key); a session of another app or, when
`user_id` is named, of another user is "not found".

Engram keeps no namespace on a session: `namespace` is checked against the key and echoed, not
stored. `memories` in a PUT (AMS promotes them to long-term memory in the background) are refused:
create them with POST /v1/long-term-memory/."""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest
from ninja import Router

from api.callers import ApiCaller, request_caller
from api.compat import mapping
from api.compat.schemas import AckOut, SessionListOut, WorkingMemoryIn, WorkingMemoryOut
from api.problems import ERRORS
from memory import working
from memory.types import InvalidInput, MemoryNotFound

router = Router(tags=["ams working memory"])


def _out(
    caller: ApiCaller,
    session: working.Session,
    messages: list[working.WorkingMessage],
    *,
    namespace: str | None,
    context_window_max: int | None,
) -> dict[str, Any]:
    now = time.time()
    return {
        "session_id": caller.external_session_id(session.id),
        "messages": [
            {"id": m.id, "role": m.role, "content": m.content, "created_at": mapping.at(min(m.at, now))}
            for m in messages
        ],
        "memories": [],
        "data": working.get_session_data(session_id=session.id),
        "context": session.summary or None,
        "user_id": session.user_id,
        "namespace": namespace,
        "tokens": session.total_tokens,
        "long_term_memory_strategy": {"strategy": session.strategy or "discrete", "config": {}},
        "ttl_seconds": session.ttl_seconds,
        "last_accessed": mapping.at(min(session.updated_at or now, now)),
        "context_percentage_total_used": (
            round(100 * session.total_tokens / context_window_max, 2)
            if context_window_max and context_window_max > 0
            else None
        ),
        "new_session": False,
    }


@router.get("/v1/working-memory/", response={200: SessionListOut, **ERRORS})
def list_sessions(
    request: HttpRequest,
    limit: int = 20,
    offset: int = 0,
    namespace: str | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """The user's sessions this key opened, newest first."""
    caller = request_caller(request)
    caller.namespace(namespace)
    if not (1 <= limit <= 1000 and 0 <= offset <= 100_000):
        raise InvalidInput("limit must be 1..1000 and offset 0..100000")
    ids = []
    for internal in working.session_ids_for_user(user_id=mapping.user_or_default(user_id)):
        try:
            ids.append(caller.external_session_id(internal))
        except MemoryNotFound:
            continue  # another app's session
    return {"sessions": ids[offset : offset + limit], "total": len(ids)}


@router.get("/v1/working-memory/{session_id}", response={200: WorkingMemoryOut, **ERRORS})
def get_working_memory(
    request: HttpRequest,
    session_id: str,
    user_id: str | None = None,
    namespace: str | None = None,
    model_name: str | None = None,
    context_window_max: int | None = None,
) -> dict[str, Any]:
    caller = request_caller(request)
    caller.namespace(namespace)
    found, messages = working.get_session_with_messages(session_id=caller.session_key(session_id))
    session = caller.require_session(found, user_id=user_id)
    return _out(caller, session, messages, namespace=namespace, context_window_max=context_window_max)


@router.put("/v1/working-memory/{session_id}", response={200: WorkingMemoryOut, **ERRORS})
def put_working_memory(
    request: HttpRequest,
    session_id: str,
    body: WorkingMemoryIn,
    user_id: str | None = None,
    model_name: str | None = None,
    context_window_max: int | None = None,
) -> dict[str, Any]:
    """Replace the session's messages, summary (`context`) and data at once."""
    caller = request_caller(request)
    caller.namespace(body.namespace)
    if body.session_id is not None and body.session_id != session_id:
        raise InvalidInput("the body's session_id is not the one in the path")
    if body.memories:
        raise InvalidInput(
            "working-memory memories are not kept here; create them with POST /v1/long-term-memory/"
        )
    key = caller.session_key(session_id)
    existing = working.get_session(session_id=key)
    if existing is not None:
        caller.require_session(existing)
    scope = caller.scope(user_id=mapping.user_or_default(user_id or body.user_id), namespace=body.namespace)
    now = time.time()
    messages = [
        working.new_message(
            role=m.role,
            content=m.content,
            message_id=m.id,
            at=mapping.not_in_future(m.created_at, now=now),
        )
        for m in body.messages
    ]
    working.replace_session(
        session_id=key,
        user_id=scope.user_id,
        agent_id=scope.agent_id,
        messages=messages,
        summary=body.context or "",
        data=body.data or {},
        # What AMS has no word for stays as it was.
        title=existing.title if existing else "",
        durable=existing.durable if existing else False,
    )
    found, stored = working.get_session_with_messages(session_id=key)
    session = caller.require_session(found)
    return _out(caller, session, stored, namespace=body.namespace, context_window_max=context_window_max)


@router.delete("/v1/working-memory/{session_id}", response={200: AckOut, **ERRORS})
def delete_working_memory(
    request: HttpRequest, session_id: str, namespace: str | None = None, user_id: str | None = None
) -> dict[str, Any]:
    """Deleting a session that is not there is a no-op, as in AMS; another user's is "not found"."""
    caller = request_caller(request)
    caller.namespace(namespace)
    key = caller.session_key(session_id)
    found = working.get_session(session_id=key)
    if found is not None:
        caller.require_session(found, user_id=user_id)
        working.delete_session(session_id=key)
    return {"status": "ok"}
