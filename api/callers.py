"""Who is calling the API: `request.auth` in every view, built from the API key by api/auth.py.

The key's confinement lives here and only here: views ask the caller for the Owner, Scope, filter
and session ids they use, and never check an app's agent or namespaces by hand.

An app key reads and writes only its own agent's memories in the namespaces it was given. Its
sessions are stored as "<agent_id>/<session id>" so two apps may use the same session id without
meeting; a session of another agent is "not found". A staff key reaches every user, agent and
namespace and uses session ids as stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from api.problems import Forbidden
from core.models import ApiKey
from memory.access import Owner
from memory.query import MAX_ID_LENGTH, MemoryFilter, validate_scope_id
from memory.types import Actor, ActorKind, InvalidInput, MemoryNotFound, Scope
from memory.working import Session

SESSION_SEPARATOR = "/"


@dataclass(frozen=True)
class ApiCaller:
    key_id: int
    name: str
    role: str  # "app" | "staff"
    agent_id: str
    namespaces: tuple[str, ...]

    @classmethod
    def from_key(cls, api_key: ApiKey) -> ApiCaller:
        return cls(
            key_id=api_key.pk,
            name=api_key.name,
            role=api_key.role,
            agent_id=api_key.agent_id,
            namespaces=tuple(str(ns) for ns in api_key.namespaces or ()),
        )

    @property
    def is_staff(self) -> bool:
        return self.role == ApiKey.Role.STAFF

    @property
    def actor(self) -> Actor:
        """Who history records for a change made with this key."""
        return Actor(ActorKind.STAFF if self.is_staff else ActorKind.APP, id=f"api-key:{self.name}")

    def require_staff(self) -> None:
        if not self.is_staff:
            raise Forbidden("this needs a staff API key")

    def owner(self, user_id: str | None = None) -> Owner:
        """Whose memories a by-id call may touch: one user's, or (user_id None) any user's within reach."""
        if self.is_staff:
            return Owner.anyone() if user_id is None else Owner.user(user_id)
        return Owner.app(agent_id=self.agent_id, namespaces=self.namespaces, user_id=user_id)

    def namespace(self, namespace: str | None) -> str | None:
        """The namespace to use: an app's must be one of its own; None stays None (any of them)."""
        if namespace is None or namespace == "":
            return None
        checked = validate_scope_id(namespace, name="namespace")
        if not self.is_staff and checked not in self.namespaces:
            raise Forbidden(f"this key may not use the namespace {checked!r}")
        return checked

    def agent(self, agent_id: str | None = None) -> str:
        """The agent a write goes to: an app's own (naming another is Forbidden); staff's choice or
        their key's."""
        return self._agent_filter(agent_id) or self.agent_id

    def _agent_filter(self, agent_id: str | None) -> str | None:
        if agent_id is None or agent_id == "":
            return None if self.is_staff else self.agent_id
        checked = validate_scope_id(agent_id, name="agent_id")
        if not self.is_staff and checked != self.agent_id:
            raise Forbidden(f"this key may not use the agent {checked!r}")
        return checked

    def scope(
        self, *, user_id: str, namespace: str | None = None, session_id: str = "", agent_id: str | None = None
    ) -> Scope:
        """Where a new memory goes. `session_id` is the caller's (external) id; it is stored as
        `session_key(session_id)`. An app's default namespace is its first; staff's the engine's."""
        ns = self.namespace(namespace)
        return Scope(
            user_id=validate_scope_id(user_id, name="user_id"),
            agent_id=self.agent(agent_id),
            namespace=ns or (self.namespaces[0] if self.namespaces else "default"),
            session_id=self.session_key(session_id) if session_id else "",
        )

    def filter(self, **kwargs: Any) -> MemoryFilter:
        """`MemoryFilter.build(**kwargs)`, confined to the key: an app's agent is forced to its own,
        and with no namespace named it reads any of its namespaces (never another's)."""
        kwargs["agent_id"] = self._agent_filter(kwargs.get("agent_id"))
        kwargs["namespace"] = self.namespace(kwargs.get("namespace"))
        if not self.is_staff:
            asked = kwargs.get("namespaces")
            kwargs["namespaces"] = [self.namespace(ns) for ns in asked] if asked else list(self.namespaces)
        session_id = kwargs.get("session_id")
        if session_id:
            kwargs["session_id"] = self.session_key(session_id)
        without = kwargs.get("without_messages_of_session")
        if without:
            kwargs["without_messages_of_session"] = self.session_key(without)
        return MemoryFilter.build(**kwargs)

    # --- Working-memory sessions ---------------------------------------------------------------

    @property
    def max_session_id_length(self) -> int:
        """The longest session id this caller may use: an app's are stored behind "<agent_id>/",
        and the stored id must fit the engine's limit."""
        if self.is_staff:
            return MAX_ID_LENGTH
        return MAX_ID_LENGTH - len(self.agent_id) - len(SESSION_SEPARATOR)

    def session_key(self, external_id: str) -> str:
        """The stored id of the caller's session `external_id`."""
        if self.is_staff:
            return validate_scope_id(external_id, name="session_id")
        limit = self.max_session_id_length
        if isinstance(external_id, str) and len(external_id) > limit:
            # Said in the caller's terms (checked first, so even an id past the engine's own limit
            # hears the caller's): the stored id's limit would name a length they never sent.
            raise InvalidInput(
                f"session_id is longer than {limit} characters (with this key, session ids are stored "
                f"as {self.agent_id!r}/<id>, at most {MAX_ID_LENGTH} characters in all)"
            )
        checked = validate_scope_id(external_id, name="session_id")
        return f"{self.agent_id}{SESSION_SEPARATOR}{checked}"

    def external_session_id(self, internal_id: str) -> str:
        """The id the caller knows a stored session (or a memory's session) by."""
        if self.is_staff or not internal_id:
            return internal_id
        head = f"{self.agent_id}{SESSION_SEPARATOR}"
        if not internal_id.startswith(head):
            raise MemoryNotFound("no such session")
        return internal_id[len(head) :]

    def admits_session(self, session: Session) -> bool:
        if self.is_staff:
            return True
        return session.agent_id == self.agent_id and session.id.startswith(
            f"{self.agent_id}{SESSION_SEPARATOR}"
        )

    def require_session(self, session: Session | None, *, user_id: str | None = None) -> Session:
        """The session, or MemoryNotFound when it is missing, another agent's or (given) another user's."""
        if (
            session is None
            or not self.admits_session(session)
            or (user_id is not None and session.user_id != user_id)
        ):
            raise MemoryNotFound("no such session (it may have expired)")
        return session


def request_caller(request: HttpRequest) -> ApiCaller:
    """`request.auth`, typed: the caller of an authenticated operation."""
    caller = getattr(request, "auth", None)
    if not isinstance(caller, ApiCaller):  # only a public operation gets here without one
        raise Forbidden("this needs an API key")
    return caller
