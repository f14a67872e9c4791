"""The base of request bodies: values of the wrong JSON type are refused, not coerced (pydantic's
lax mode turns `false` into 0.0 and "3" into 3, so a client's bug would be stored as data).

Only for bodies: query and path values arrive as strings and need the lax conversion."""

from __future__ import annotations

from ninja import Schema
from pydantic import ConfigDict


class StrictSchema(Schema):
    model_config = ConfigDict(strict=True)
