"""Building RediSearch queries safely: validated filters, escaped values, keyword terms.

Every value from outside goes through `escape_tag` or `keyword_terms`; an id like `a|b`, `*`,
`}` or `-x` can only ever match itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from memory.types import InvalidInput, MemoryType

MAX_ID_LENGTH = 200
MAX_TAG_LENGTH = 64
MAX_FILTER_VALUES = 50
MAX_KEYWORD_TERMS = 24

# Lone surrogates too: they cannot be encoded, so such an id could never name a Redis key.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
# The query parser only gives meaning to ASCII punctuation and white space; escaping a non-ASCII
# letter breaks the match, so those stay as they are.
# (One substitution per value: searches escape every word and id they send.)
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_\x80-\U0010ffff]")
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?", re.UNICODE)

# Words that carry no signal for keyword search (RediSearch drops its own list too; an all-stopword
# query would match nothing and make the parser complain).
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "don",
        "ll",
        "m",
        "re",
        "ve",
        "d",
    ]
)


def validate_id(value: object, *, name: str, required: bool = True) -> str:
    """An id used as a scope or key part: a non-empty string without control characters."""
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"{name} is longer than {MAX_ID_LENGTH} characters")
    if _CONTROL.search(value):
        raise InvalidInput(f"{name} contains control characters")
    return value


# RediSearch splits a TAG value at its separator (`,` for the scope fields) and trims white space at
# both ends of each part, so `alice,mallory` is indexed as the tags `alice` and `mallory`, and `bob `
# as `bob`. An id that indexing would change cannot be a scope: it would match other ids. (Case is
# kept: the scope fields are CASESENSITIVE, see memory/index.py, so `Alice` is not `alice`.)
TAG_SEPARATOR = ","


def validate_scope_id(value: object, *, name: str, required: bool = True) -> str:
    """A user, agent, session or namespace id: `validate_id`, and indexed exactly as written."""
    checked = validate_id(value, name=name, required=required)
    if TAG_SEPARATOR in checked:
        raise InvalidInput(f"{name} may not contain a comma")
    if checked != checked.strip():
        raise InvalidInput(f"{name} may not start or end with a space")
    return checked


def _scope_ids(values: object, *, name: str) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list | tuple):
        raise InvalidInput(f"{name} must be a list")
    return list(dict.fromkeys(validate_scope_id(v, name=name) for v in values))


def escape_tag(value: str) -> str:
    """Escape every ASCII character that is not a letter, digit or underscore."""
    return _TAG_UNSAFE.sub(r"\\\g<0>", value)


def _tag_value(value: str) -> str:
    # A tag that is one bare underscore (`{_}`) is a syntax error in RediSearch 2.10; `{\_}` is fine.
    return escape_tag(value).replace("_", "\\_")


def tag_clause(field_name: str, values: list[str]) -> str:
    return f"@{field_name}:{{{' | '.join(_tag_value(v) for v in values)}}}"


def normalise_tags(values: object, *, name: str) -> list[str]:
    """Topics/entities: lower-case, trimmed, de-duplicated; commas are the stored separator."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list | tuple | set):
        raise InvalidInput(f"{name} must be a list of strings")
    cleaned: list[str] = []
    for raw in values:
        if not isinstance(raw, str):
            raise InvalidInput(f"{name} must be a list of strings")
        tag = " ".join(raw.replace(",", " ").split()).lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH or _CONTROL.search(tag):
            raise InvalidInput(f"{name} entry {raw[:20]!r}… is too long or has control characters")
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_FILTER_VALUES:
        raise InvalidInput(f"at most {MAX_FILTER_VALUES} {name}")
    return cleaned


def parse_types(values: object) -> list[MemoryType]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list | tuple | set):
        raise InvalidInput("types must be a list")
    try:
        return [MemoryType(v) for v in values]
    except ValueError as exc:
        allowed = ", ".join(t.value for t in MemoryType)
        raise InvalidInput(f"unknown memory type in {list(values)!r}; use {allowed}") from exc


def keyword_terms(text: str) -> list[str]:
    """Distinct meaningful words of a query, in order, for an OR keyword search."""
    terms: list[str] = []
    for match in _WORD.finditer(text.lower()):
        word = match.group(0).replace("\u2019", "'").split("'")[0]
        if len(word) < 2 or word in STOPWORDS or word in terms:
            continue
        terms.append(word)
        if len(terms) == MAX_KEYWORD_TERMS:
            break
    return terms


def keyword_clause(terms: list[str]) -> str:
    return "@text:(" + " | ".join(escape_tag(t) for t in terms) + ")"


def _number(value: object, *, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{name} must be a number (epoch seconds)")
    # JSON parsers accept NaN and Infinity; RediSearch rejects "nan" in a range query (and a range
    # from "inf" matches nothing), so neither is a time.
    if not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number (epoch seconds), not {value!r}")
    return float(value)


@dataclass(frozen=True)
class TimeRange:
    after: float | None = None
    before: float | None = None

    def clause(self, field_name: str) -> str:
        low = "-inf" if self.after is None else repr(self.after)
        high = "+inf" if self.before is None else repr(self.before)
        return f"@{field_name}:[{low} {high}]"

    @property
    def empty(self) -> bool:
        return self.after is None and self.before is None


def time_range(after: object = None, before: object = None, *, name: str) -> TimeRange:
    low = None if after is None else _number(after, name=f"{name} after")
    high = None if before is None else _number(before, name=f"{name} before")
    if low is not None and high is not None and low > high:
        raise InvalidInput(f"{name}: 'after' is later than 'before'")
    return TimeRange(low, high)


@dataclass(frozen=True)
class MemoryFilter:
    """A validated scope + attribute filter. Build it with `MemoryFilter.build(...)`."""

    user_id: str
    agent_id: str = ""
    namespace: str = ""
    # Any of these namespaces (an app key's allowed ones, when it names none); with `namespace`, both hold.
    namespaces: list[str] = field(default_factory=list)
    session_id: str = ""
    types: list[MemoryType] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    created: TimeRange = TimeRange()
    updated: TimeRange = TimeRange()
    event: TimeRange = TimeRange()
    pinned_only: bool = False
    # Leave out this session's `message` memories (the chat has them as recent messages already).
    without_messages_of_session: str = ""

    @classmethod
    def build(
        cls,
        *,
        user_id: object,
        agent_id: object = None,
        namespace: object = None,
        namespaces: object = None,
        session_id: object = None,
        types: object = None,
        topics: object = None,
        entities: object = None,
        created_after: object = None,
        created_before: object = None,
        updated_after: object = None,
        updated_before: object = None,
        event_after: object = None,
        event_before: object = None,
        pinned_only: bool = False,
        without_messages_of_session: object = None,
    ) -> MemoryFilter:
        return cls(
            user_id=validate_scope_id(user_id, name="user_id"),
            agent_id=validate_scope_id(agent_id, name="agent_id", required=False),
            namespace=validate_scope_id(namespace, name="namespace", required=False),
            namespaces=_scope_ids(namespaces, name="namespaces"),
            session_id=validate_scope_id(session_id, name="session_id", required=False),
            types=parse_types(types),
            topics=normalise_tags(topics, name="topics"),
            entities=normalise_tags(entities, name="entities"),
            created=time_range(created_after, created_before, name="created"),
            updated=time_range(updated_after, updated_before, name="updated"),
            event=time_range(event_after, event_before, name="event_date"),
            pinned_only=pinned_only,
            without_messages_of_session=validate_scope_id(
                without_messages_of_session, name="without_messages_of_session", required=False
            ),
        )

    def clauses(self, *, now: float) -> list[str]:
        parts = [tag_clause("user_id", [self.user_id])]
        for field_name, value in (
            ("agent_id", self.agent_id),
            ("namespace", self.namespace),
            ("session_id", self.session_id),
        ):
            if value:
                parts.append(tag_clause(field_name, [value]))
        if self.namespaces:
            parts.append(tag_clause("namespace", self.namespaces))
        if self.types:
            parts.append(tag_clause("type", [str(t) for t in self.types]))
        if self.topics:
            parts.append(tag_clause("topics", self.topics))
        if self.entities:
            parts.append(tag_clause("entities", self.entities))
        for field_name, time_filter in (
            ("created_at", self.created),
            ("updated_at", self.updated),
            ("event_date", self.event),
        ):
            if not time_filter.empty:
                parts.append(time_filter.clause(field_name))
        if self.pinned_only:
            parts.append(tag_clause("pinned", ["1"]))
        if self.without_messages_of_session:
            session = tag_clause("session_id", [self.without_messages_of_session])
            parts.append(f"-({tag_clause('type', ['message'])} {session})")
        # Expired keys can linger until Redis' expiry cycle reaches them; never return them.
        parts.append(f"-@expires_at:[-inf {now!r}]")
        return parts

    def query(self, *, now: float) -> str:
        return " ".join(self.clauses(now=now))
