"""Working memory: a user's sessions, each with its messages, summary and free-form data.

Session ids in paths and bodies are the caller's own: an app key's are stored under its agent
(`ApiCaller.session_key`), so two apps never meet in a session and neither sees the chat's."""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Path, Query, Router, Schema, Status

from api.callers import ApiCaller, request_caller
from api.problems import ERRORS
from api.strict import StrictSchema
from api.v1.cursors import decode_cursor, encode_cursor
from memory import working
from memory.query import MAX_ID_LENGTH, validate_scope_id
from memory.working import Session, WorkingMessage

router = Router(tags=["sessions"])

ID_LENGTH = MAX_ID_LENGTH
MAX_MESSAGES_PER_PUT = 1000
MAX_MESSAGES_PER_APPEND = 100
# 200 is the limit of a staff key's ids; an app key's are stored as "<agent_id>/<id>" in those 200,
# so its limit is 199 minus its agent id's length (`ApiCaller.max_session_id_length`), a 422 past it.
# A schema cannot vary by key: the description says so.
SESSION_ID = Path(
    ...,
    min_length=1,
    max_length=ID_LENGTH,
    description=(
        f"Your id for the session: at most {ID_LENGTH} characters with a staff key; with an app key "
        f"{ID_LENGTH - 1} minus the length of the key's agent id"
    ),
)
Role = Literal["user", "assistant", "system", "tool"]


class MessageIn(StrictSchema):
    role: Role
    content: str = Field(..., max_length=settings.MESSAGE_MAX_CHARS)
    id: str | None = Field(None, min_length=1, max_length=ID_LENGTH, description="Default: a new ULID")
    at: float | None = Field(None, ge=0, lt=32_503_680_000, description="Seconds since 1970; default: now")


class MessageOut(Schema):
    id: str
    role: str
    content: str
    at: float
    tokens: int


class SessionSummary(Schema):
    id: str
    user_id: str
    agent_id: str
    title: str
    created_at: float
    updated_at: float
    durable: bool
    ttl_seconds: int | None
    message_count: int
    tokens: int


class SessionOut(SessionSummary):
    summary: str
    messages: list[MessageOut]
    data: dict[str, Any]


class SessionIn(StrictSchema):
    user_id: str = Field(..., min_length=1, max_length=ID_LENGTH)
    agent_id: str | None = Field(
        None, min_length=1, max_length=ID_LENGTH, description="Staff keys only; an app key's own agent"
    )
    title: str = Field("", max_length=200)
    summary: str = Field("", max_length=settings.MESSAGE_MAX_CHARS)
    durable: bool = Field(False, description="Never expires (otherwise the working-memory TTL applies)")
    messages: list[MessageIn] = Field(default_factory=list, max_length=MAX_MESSAGES_PER_PUT)
    data: dict[str, Any] = Field(default_factory=dict)


class AppendIn(StrictSchema):
    messages: list[MessageIn] = Field(..., min_length=1, max_length=MAX_MESSAGES_PER_APPEND)


class AppendOut(Schema):
    messages: list[MessageOut]


class SessionPage(Schema):
    sessions: list[SessionSummary]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last")


class SessionData(StrictSchema):
    data: dict[str, Any]


class ListQuery(Schema):
    user_id: str = Field(..., min_length=1, max_length=ID_LENGTH)
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=40)


def _message_out(message: WorkingMessage) -> MessageOut:
    return MessageOut(
        id=message.id, role=message.role, content=message.content, at=message.at, tokens=message.tokens
    )


def _summary_fields(caller: ApiCaller, session: Session) -> dict[str, Any]:
    return {
        "id": caller.external_session_id(session.id),
        "user_id": session.user_id,
        "agent_id": session.agent_id,
        "title": session.title,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "durable": session.durable,
        "ttl_seconds": session.ttl_seconds,
        "message_count": session.message_count,
        "tokens": session.total_tokens,
    }


def _session_out(caller: ApiCaller, session: Session, messages: list[WorkingMessage]) -> SessionOut:
    return SessionOut(
        **_summary_fields(caller, session),
        summary=session.summary,
        messages=[_message_out(m) for m in messages],
        data=working.get_session_data(session_id=session.id),
    )


def _new_messages(items: list[MessageIn]) -> list[WorkingMessage]:
    """The messages of a request body, checked and counted by the engine (nothing stored yet)."""
    return [working.new_message(role=m.role, content=m.content, message_id=m.id, at=m.at) for m in items]


def _read(caller: ApiCaller, session_id: str) -> tuple[Session, list[WorkingMessage]]:
    session, messages = working.get_session_with_messages(session_id=caller.session_key(session_id))
    return caller.require_session(session), messages


@router.get("", response={200: SessionPage, **ERRORS}, summary="A user's sessions, newest first")
def list_sessions(request: HttpRequest, query: Query[ListQuery]) -> SessionPage:
    caller = request_caller(request)
    offset = decode_cursor(query.cursor)
    user_id = validate_scope_id(query.user_id, name="user_id")
    sessions = [s for s in working.list_sessions(user_id=user_id) if caller.admits_session(s)]
    page = sessions[offset : offset + query.limit]
    more = offset + query.limit < len(sessions)
    return SessionPage(
        sessions=[SessionSummary(**_summary_fields(caller, s)) for s in page],
        next_cursor=encode_cursor(offset + query.limit) if more else None,
    )


@router.get("/{session_id}", response={200: SessionOut, **ERRORS}, summary="A session with its messages")
def get_session(request: HttpRequest, session_id: str = SESSION_ID) -> SessionOut:
    caller = request_caller(request)
    session, messages = _read(caller, session_id)
    return _session_out(caller, session, messages)


@router.put(
    "/{session_id}",
    response={200: SessionOut, **ERRORS},
    summary="Create or replace a whole session (atomic)",
)
def put_session(request: HttpRequest, body: SessionIn, session_id: str = SESSION_ID) -> SessionOut:
    caller = request_caller(request)
    internal_id = caller.session_key(session_id)
    existing = working.get_session(session_id=internal_id)
    if existing is not None:
        caller.require_session(existing)
    messages = _new_messages(body.messages)
    session = working.replace_session(
        session_id=internal_id,
        user_id=body.user_id,
        agent_id=caller.agent(body.agent_id),
        messages=messages,
        data=body.data,
        title=body.title,
        summary=body.summary,
        durable=body.durable,
    )
    written, stored = working.get_session_with_messages(session_id=session.id)
    return _session_out(caller, caller.require_session(written), stored)


@router.delete("/{session_id}", response={204: None, **ERRORS}, summary="Delete a session")
def delete_session(request: HttpRequest, session_id: str = SESSION_ID) -> Status[None]:
    caller = request_caller(request)
    session, _ = _read(caller, session_id)
    working.delete_session(session_id=session.id)
    return Status(204, None)


@router.post(
    "/{session_id}/messages",
    response={201: AppendOut, **ERRORS},
    summary="Append messages to a session",
)
def append_messages(request: HttpRequest, body: AppendIn, session_id: str = SESSION_ID) -> Status[AppendOut]:
    caller = request_caller(request)
    session, _ = _read(caller, session_id)
    messages = _new_messages(body.messages)
    working.append_messages(session_id=session.id, messages=messages)
    return Status(201, AppendOut(messages=[_message_out(m) for m in messages]))


@router.get("/{session_id}/data", response={200: SessionData, **ERRORS}, summary="A session's data")
def get_session_data(request: HttpRequest, session_id: str = SESSION_ID) -> SessionData:
    caller = request_caller(request)
    session, _ = _read(caller, session_id)
    return SessionData(data=working.get_session_data(session_id=session.id))


@router.put(
    "/{session_id}/data",
    response={200: SessionData, **ERRORS},
    summary="Replace a session's data",
)
def put_session_data(request: HttpRequest, body: SessionData, session_id: str = SESSION_ID) -> SessionData:
    caller = request_caller(request)
    session, _ = _read(caller, session_id)
    working.replace_session_data(session_id=session.id, values=body.data)
    return SessionData(data=working.get_session_data(session_id=session.id))
