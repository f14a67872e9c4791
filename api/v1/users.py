"""Users: their memories counted by type, their data exported, and (staff keys only) erased.

An app key counts and exports only its own agent's memories in its namespaces, and its sessions."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest
from ninja import Field, Path, Router, Schema

from api.callers import request_caller
from api.problems import ERRORS
from api.strict import StrictSchema
from api.v1.memory_schemas import record_schema
from memory import lifecycle
from memory.export import export_user
from memory.selectors import counts_by_type
from memory.types import InvalidInput

logger = logging.getLogger(__name__)
router = Router(tags=["users"])

USER_ID = Path(..., min_length=1, max_length=200, description="The user's memory id")


class Counts(Schema):
    user_id: str
    total: int
    by_type: dict[str, int]


class Export(Schema):
    format: str
    user_id: str
    exported_at: float
    exported_by: str
    memories: list[dict[str, Any]]
    deleted_memories: list[dict[str, Any]]
    sessions: list[dict[str, Any]]


class EraseIn(StrictSchema):
    confirm: str = Field(..., min_length=1, max_length=200, description="The user id again, to confirm")


EraseReceipt = record_schema(lifecycle.EraseReceipt)


@router.get("/{user_id}/counts", response={200: Counts, **ERRORS}, summary="A user's live memories by type")
def user_counts(request: HttpRequest, user_id: str = USER_ID) -> Counts:
    caller = request_caller(request)
    by_type = counts_by_type(user_id=user_id, filter=caller.filter(user_id=user_id))
    return Counts(user_id=user_id, total=sum(by_type.values()), by_type=by_type)


@router.get("/{user_id}/export", response={200: Export, **ERRORS}, summary="Everything held about a user")
def user_export(request: HttpRequest, user_id: str = USER_ID) -> dict[str, Any]:
    caller = request_caller(request)
    data = export_user(
        user_id=user_id,
        exported_by=caller.actor.id,
        owner=caller.owner(user_id),
        admits_session=caller.admits_session,
    )
    # Under the ids the caller knows them by (an app's own, without its agent's prefix).
    data["sessions"] = [{**s, "id": caller.external_session_id(s["id"])} for s in data["sessions"]]
    logger.info("api: %s exported user %r", caller.actor.id, user_id)
    return data


@router.post(
    "/{user_id}/erase",
    response={200: EraseReceipt, **ERRORS},
    summary="Erase everything of a user (staff keys only)",
)
def user_erase(request: HttpRequest, body: EraseIn, user_id: str = USER_ID) -> dict[str, Any]:
    caller = request_caller(request)
    caller.require_staff()
    if body.confirm != user_id:
        raise InvalidInput("confirm must repeat the user id")
    receipt = lifecycle.erase_user(user_id=user_id, actor=caller.actor)
    logger.info("api: %s erased user %r (receipt %s)", caller.actor.id, user_id, receipt.receipt_id)
    return receipt.as_dict()
