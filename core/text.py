"""Text that can always be stored and rendered.

JSON lets a client (a WebSocket frame, a model's tool call, an API body) send an unpaired UTF-16
surrogate such as "\\ud83d". Python keeps it in a str, `json.dumps` writes it back as an escape,
and every later attempt to encode it as UTF-8 (a page, an export, a Redis hash field) raises. So
text is cleaned where it enters storage, and JSON read back from storage is cleaned too, which also
repairs what older versions stored.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE = re.compile(r"[\ud800-\udfff]")
# In stored JSON a surrogate can only appear as an escape: \ud800 to \udfff, any hex case.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
# Control characters other than tab, newline and carriage return carry no text (NUL above all).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def without_lone_surrogates(value: str) -> str:
    """Pairs become the character they encode; an unpaired surrogate becomes U+FFFD."""
    if not _SURROGATE.search(value):
        return value
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def clean_text(value: str) -> str:
    """Text as it may be stored: valid Unicode, without NUL and other non-text control characters."""
    return _CONTROL.sub("", without_lone_surrogates(value))


def clean_json(value: Any) -> Any:
    """Every string in a JSON value (keys too) without lone surrogates."""
    if isinstance(value, str):
        return without_lone_surrogates(value)
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    if isinstance(value, dict):
        return {
            without_lone_surrogates(k) if isinstance(k, str) else k: clean_json(v) for k, v in value.items()
        }
    return value


def loads(raw: bytes | str) -> Any:
    """`json.loads` for stored JSON: the result is always renderable. The walk only runs when the
    raw text holds a surrogate escape, so clean data costs one regex scan."""
    data = json.loads(raw)
    if isinstance(raw, bytes):
        suspect = _SURROGATE_ESCAPE_BYTES.search(raw) is not None
    else:
        suspect = bool(_SURROGATE_ESCAPE.search(raw) or _SURROGATE.search(raw))
    return clean_json(data) if suspect else data
