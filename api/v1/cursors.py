"""Opaque page cursors: a client passes back the `next` it was given and never builds one itself,
so what a cursor holds (today a position) can change without breaking anyone."""

from __future__ import annotations

import base64
import binascii

from memory.types import InvalidInput

_PREFIX = "p1:"
# A position has at most this many digits; anything longer is not a cursor this API gave out.
_MAX_DIGITS = 12


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The position a cursor stands for (0 without one); InvalidInput for anything else."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    digits = raw.removeprefix(_PREFIX)
    if (
        not raw.startswith(_PREFIX)
        or not digits.isascii()
        or not digits.isdigit()
        or len(digits) > _MAX_DIGITS
    ):
        raise InvalidInput("cursor is not one this API gave out; start again without it")
    return int(digits)
