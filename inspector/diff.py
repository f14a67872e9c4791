"""Word-level diff of two memory texts, as segments the template renders with <ins>/<del>.

Tokens keep their white space, so joining the "equal" + "delete" segments gives back the old text
and "equal" + "insert" the new one; the template escapes each segment.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

Op = Literal["equal", "insert", "delete"]
Segment = tuple[Op, str]

# A word, a run of white space, or one other character (punctuation stays its own token so
# "Lisbon." -> "Porto." changes one word and keeps the full stop). An apostrophe between letters is
# part of the word: "user's" -> "users'" must not read as a change of "s" after a kept "user'".
_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*|\s+|[^\w\s]", re.UNICODE)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


@dataclass
class _Run:
    """Either unchanged text (`equal`), or a change: old text struck out, new text inserted."""

    equal: str = ""
    old: str = ""
    new: str = ""

    @property
    def is_replace(self) -> bool:
        return bool(self.old and self.new)


def word_diff(old: str, new: str) -> list[Segment]:
    a, b = tokens(old), tokens(new)
    runs: list[_Run] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            runs.append(_Run(equal="".join(a[i1:i2])))
        else:
            runs.append(_Run(old="".join(a[i1:i2]), new="".join(b[j1:j2])))
    return _segments(_merge_word_replacements(runs))


def _merge_word_replacements(runs: list[_Run]) -> list[_Run]:
    """ "<del>big</del><ins>small</ins> <del>dog</del><ins>cat</ins>" reads worse than
    "<del>big dog</del><ins>small cat</ins>": fold a lone space between two replacements into them."""
    merged: list[_Run] = []
    for run in runs:
        if len(merged) >= 2 and run.is_replace and merged[-1].equal.isspace() and merged[-2].is_replace:
            gap = merged.pop().equal
            previous = merged[-1]
            previous.old += gap + run.old
            previous.new += gap + run.new
        else:
            merged.append(run)
    return merged


def _segments(runs: list[_Run]) -> list[Segment]:
    segments: list[Segment] = []
    for run in runs:
        if run.equal:
            segments.append(("equal", run.equal))
        if run.old:
            segments.append(("delete", run.old))
        if run.new:
            segments.append(("insert", run.new))
    return segments


def reconstruct(segments: list[Segment], *, side: Literal["old", "new"]) -> str:
    """The text of one side (tests use it to prove the diff loses nothing)."""
    drop = "insert" if side == "old" else "delete"
    return "".join(text for op, text in segments if op != drop)
