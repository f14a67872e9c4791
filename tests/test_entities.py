"""memory.entities.entities_for_text: the names a memory's text holds, recomputed when it changes."""

from __future__ import annotations

import pytest

from memory.entities import entities_for_text


@pytest.mark.parametrize(
    ("text", "known", "expected"),
    [
        # A name of several words keeps its possessive: the entity is the place, not "st mary".
        (
            "User's partner works at St Mary's clinic and doesn't work weekends",
            ["st mary's hospital"],
            ["st mary's"],
        ),
        ("User's partner works at St Mary\u2019s clinic", [], ["st mary\u2019s"]),
        ("User works at St Mary's Hospital in London", [], ["st mary's hospital", "london"]),
        # On one word the possessive is grammar: Ana's car is Ana's.
        ("User's sister Ana's car is a Toyota", [], ["ana", "toyota"]),
        ("User met O'Brien in Lisbon", [], ["o'brien", "lisbon"]),
        # A known entity the new text still names is kept as it was stored.
        ("User's partner works at St Mary's Hospital", ["st mary's hospital"], ["st mary's hospital"]),
    ],
)
def test_names_with_apostrophes(text: str, known: list[str], expected: list[str]) -> None:
    assert entities_for_text(text, known=known) == expected


def test_the_same_name_is_one_entity_before_and_after_an_edit() -> None:
    before = entities_for_text("User's partner works at St Mary's Hospital")
    after = entities_for_text("User's partner works at St Mary's clinic", known=before)
    assert before == ["st mary's hospital"] and after == ["st mary's"]
