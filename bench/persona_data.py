"""The persona suites (bench/personas/*.json): people telling Engram about themselves, then asking.

A persona has chats (a time and the user's messages, in order) and facts: where each fact was said,
what a stored memory must contain for the fact to count as learned (`expect`), old values a change
replaced (`stale`), and questions asked later in a new chat whose reply must contain the `answer`.
`expect` and `answer` are groups of alternatives: every group needs one alternative, found where a
word starts, case-insensitively and ignoring accents.

`dev.json` is the suite the extractor and retrieval were tuned on; `holdout.json` was written by
someone else, without sight of the code or of dev.json, and is only measured.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

SUITES_DIR = Path(__file__).resolve().parent / "personas"
Groups = tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Question:
    text: str
    answer: Groups


@dataclass(frozen=True)
class Fact:
    id: str
    kind: str
    chat: int
    message: int
    expect: Groups
    stale: tuple[str, ...]
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Chat:
    at: float  # epoch seconds
    messages: tuple[str, ...]


@dataclass(frozen=True)
class Persona:
    id: str
    chats: tuple[Chat, ...]
    facts: tuple[Fact, ...]
    broad_questions: tuple[str, ...]

    @property
    def asked_at(self) -> float:
        """The questions come a day after the last chat."""
        return self.chats[-1].at + 86400


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    personas: tuple[Persona, ...]

    @property
    def facts(self) -> list[Fact]:
        return [f for p in self.personas for f in p.facts]

    @property
    def questions(self) -> list[Question]:
        return [q for f in self.facts for q in f.questions]


def _groups(raw: Sequence[Sequence[str]], *, where: str) -> Groups:
    groups = tuple(tuple(str(a) for a in group if str(a).strip()) for group in raw)
    if not groups or any(not g for g in groups):
        raise ValueError(f"{where}: every group needs at least one alternative")
    return groups


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _fact(raw: dict[str, Any], chats: Sequence[Chat], *, persona: str) -> Fact:
    chat, message = (int(x) for x in raw["said"])
    if not (0 <= chat < len(chats) and 0 <= message < len(chats[chat].messages)):
        raise ValueError(f"{persona}/{raw['id']}: 'said' {raw['said']} points at no message")
    return Fact(
        id=str(raw["id"]),
        kind=str(raw["kind"]),
        chat=chat,
        message=message,
        expect=_groups(raw["expect"], where=f"{raw['id']} expect"),
        stale=tuple(str(s) for s in raw.get("stale") or ()),
        questions=tuple(
            Question(str(q["text"]), _groups(q["answer"], where=f"{raw['id']} answer"))
            for q in raw["questions"]
        ),
    )


def load_suite(path: Path) -> Suite:
    data = json.loads(path.read_text())
    personas = []
    for raw in data["personas"]:
        chats = tuple(Chat(_epoch(c["at"]), tuple(str(m) for m in c["messages"])) for c in raw["chats"])
        facts = tuple(_fact(f, chats, persona=raw["id"]) for f in raw["facts"])
        personas.append(
            Persona(str(raw["id"]), chats, facts, tuple(str(q) for q in raw.get("broad_questions") or ()))
        )
    return Suite(path.stem, str(data.get("description", "")), tuple(personas))


STATEMENTS = SUITES_DIR / "statements.json"
# The order results are reported in: the tuning suite first, then the two it was never tuned on...
SUITE_ORDER = ("dev", "holdout", "fresh", "final")


def suite_paths() -> list[Path]:
    return [SUITES_DIR / f"{name}.json" for name in SUITE_ORDER if (SUITES_DIR / f"{name}.json").is_file()]


def load_statements() -> dict[str, str]:
    """Fact id -> the statement a good model extractor would write for it (bench/persona_model.py)."""
    return dict(json.loads(STATEMENTS.read_text())["statements"])


# --- Matching --------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    """Lower case, accents off, curly quotes straight: "Malmö" matches "Malmo", "Mary\u2019s" "Mary's"."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=4096)
def _pattern(alternative: str) -> re.Pattern[str]:
    folded = re.escape(_fold(alternative.strip()))
    # From the start of a word: "Eli" must not match "delicious"; a prefix counts ("Reykjav" for
    # "Reykjavík", "70" for "70th", "teach" for "teaches"), as the suites' writers intended.
    return re.compile(rf"(?<![\w]){folded}")


def mentions(text: str, groups: Groups) -> bool:
    """Every group has an alternative in `text`, starting where a word starts."""
    folded = _fold(text)
    return all(any(_pattern(alt).search(folded) for alt in group) for group in groups)


def mentions_any(texts: Iterable[str], groups: Groups) -> bool:
    return any(mentions(text, groups) for text in texts)
