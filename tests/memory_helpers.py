"""Small builders shared by the memory tests."""

from memory.types import Actor, ActorKind, Scope

USER = Actor(ActorKind.USER, "tester")
STAFF = Actor(ActorKind.STAFF, "support-1")
EXTRACTOR = Actor(ActorKind.EXTRACTOR, "worker-1", model="gpt-test", prompt_version="v1")


def scope(user_id: str = "alice", **kwargs: str) -> Scope:
    return Scope(user_id=user_id, **kwargs)
