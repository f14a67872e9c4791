"""A URL path converter for user and session ids, which may contain any character.

Plain ids (`user-7`, `anon-3fa2…`, `s1`) stay readable in the URL. Anything else (`a|b c`, `a/b`,
`..`, `~x`) becomes `~` + base64url of its UTF-8 bytes. Percent-encoding is not enough: servers
decode `%2F` to `/` before routing, and browsers collapse `.`/`..` segments (even as `%2E%2E`).
Incoming raw ids that do not start with `~` are accepted as typed (e.g. `a%7Cb%20c`).
"""

from __future__ import annotations

import base64
import binascii
import re

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
ENCODED_PREFIX = "~"


def encode_key(value: str) -> str:
    if _PLAIN.fullmatch(value):
        return value
    return ENCODED_PREFIX + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_key(value: str) -> str:
    if not value.startswith(ENCODED_PREFIX):
        return value
    token = value[len(ENCODED_PREFIX) :]
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        # A ValueError from a converter makes the URL not match: a 404, never a 500.
        raise ValueError("not an encoded id") from exc


class KeyConverter:
    regex = r"[^/]+"

    def to_python(self, value: str) -> str:
        return decode_key(value)

    def to_url(self, value: str) -> str:
        return encode_key(value)
