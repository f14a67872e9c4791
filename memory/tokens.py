"""Token counting: exact with tiktoken's cl100k_base when its file is available, else an estimate.

tiktoken downloads its BPE file on first use; there is no network here, so we look for the cached
file ourselves first and never trigger a download. Callers get `exact=False` when estimating, and
the UI says so.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tiktoken

ENCODING = "cl100k_base"
_BPE_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
_lock = threading.Lock()
_encoder: Any = None
_encoder_checked = False


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    exact: bool


def _cache_file() -> Path:
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "data-gym-cache"
    return folder / hashlib.sha1(_BPE_URL.encode()).hexdigest()  # noqa: S324 - tiktoken's own cache naming


def _get_encoder() -> Any:
    global _encoder, _encoder_checked
    if _encoder_checked:
        return _encoder
    with _lock:
        if not _encoder_checked:
            if _cache_file().is_file():
                try:
                    _encoder = tiktoken.get_encoding(ENCODING)
                except Exception:  # a corrupt cache file must not take the product down
                    _encoder = None
            _encoder_checked = True
    return _encoder


def exact_counts_available() -> bool:
    return _get_encoder() is not None


def estimate_tokens(text: str) -> int:
    """~4 characters per token for English; never 0 for non-empty text."""
    return (len(text) + 3) // 4 if text else 0


def count_tokens(text: str) -> TokenCount:
    encoder = _get_encoder()
    if encoder is None:
        return TokenCount(estimate_tokens(text), exact=False)
    return TokenCount(len(encoder.encode(text, disallowed_special=())), exact=True)


def count(text: str) -> int:
    return count_tokens(text).tokens


# Chat formats add a few tokens per message for the role and separators.
MESSAGE_OVERHEAD_TOKENS = 4


def count_message(content: str) -> int:
    return count(content) + MESSAGE_OVERHEAD_TOKENS


def reset_for_tests() -> None:
    global _encoder, _encoder_checked
    with _lock:
        _encoder, _encoder_checked = None, False
