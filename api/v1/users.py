"""Users: their memories counted by type, export, erase (staff keys only)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Path, Router, Schema

from api.callers import request_caller
from api.problems import ERRORS
from memory.selectors import counts_by_type

router = Router(tags=["users"])

USER_ID = Path(..., min_length=1, max_length=200, description="The user's memory id")


class Counts(Schema):
    user_id: str
    total: int
    by_type: dict[str, int]


@router.get("/{user_id}/counts", response={200: Counts, **ERRORS}, summary="A user's live memories by type")
def user_counts(request: HttpRequest, user_id: str = USER_ID) -> Counts:
    caller = request_caller(request)
    by_type = counts_by_type(user_id=user_id, filter=caller.filter(user_id=user_id))
    return Counts(user_id=user_id, total=sum(by_type.values()), by_type=by_type)
