"""Chat titles: a new chat is named after its first message until the user renames it."""

from __future__ import annotations

import re

from core.text import clean_text

DEFAULT_TITLE = "New chat"
MAX_TITLE_CHARS = 200  # what a user may type when renaming
AUTO_TITLE_CHARS = 60  # a title made from a message: short enough for one line of the chat list
_SPACE = re.compile(r"\s+")


def clean_title(text: str) -> str:
    """A title as it may be stored and shown: no control characters, one line, no outer spaces."""
    return _SPACE.sub(" ", clean_text(text)).strip()


def title_from_message(text: str, *, limit: int = AUTO_TITLE_CHARS) -> str:
    """The first words of a message, cut at a word boundary with an ellipsis; "" for a blank one."""
    title = clean_title(text)
    if len(title) <= limit:
        return title
    cut = title[: limit + 1]
    # Cut at the last space, unless that would leave almost nothing (one very long "word").
    words = cut.rsplit(" ", 1)[0] if " " in cut[limit // 2 :] else cut[:limit]
    return words.rstrip(" ,.;:-\u2013\u2014") + "\u2026"
