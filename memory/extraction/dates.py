"""Resolving the date expressions people use in chat against the moment the message was sent.

Supported (case-insensitive):

* named days: "today", "tonight", "this morning/afternoon/evening", "yesterday", "last night",
  "the day before yesterday", "tomorrow", "the day after tomorrow";
* periods: "last week" / "next week" (reference -/+ 7 days), "last month" / "next month",
  "last year" / "next year" (same day of the month, clamped to the month's length);
* weekdays: "last Monday" / "this past Monday" (the most recent Monday strictly before the
  reference), "next Monday" (the first one strictly after), "on Monday" (see `Tense`);
* counts: "2 days ago", "three weeks ago", "a month ago", "in 3 days", "in two years";
* calendar dates: ISO "2024-05-03", "May 3", "May 3rd, 2024", "3 May", "3rd of May 2023",
  "the 3rd of May" (full or abbreviated month names).

A calendar date without a year and a bare "on <weekday>" are ambiguous; the caller says which way
to lean with `tense`:

* "any" (default): a yearless date takes the reference's year, "on Monday" is the last Monday;
* "past": as "any", but a yearless date that would fall after the reference moves a year back;
* "future": a yearless date that would fall before the reference moves a year forward, and
  "on Monday" is the next Monday.

The reference's own calendar date is used (callers pass a UTC datetime, see `rules.py`).
Vague expressions ("recently", "the other day", "in May") resolve to nothing on purpose: a wrong
date is worse than none.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

Tense = Literal["past", "future", "any"]

_MONTHS = {
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "mar": 3,
    "april": 4,
    "apr": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sept": 9,
    "sep": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "a couple of": 2,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
_NAMED_DAYS = {
    "the day before yesterday": -2,
    "the day after tomorrow": 2,
    "yesterday": -1,
    "last night": -1,
    "today": 0,
    "tonight": 0,
    "this morning": 0,
    "this afternoon": 0,
    "this evening": 0,
    "tomorrow": 1,
}
# "May" and "March" are also a modal verb and a verb; in running text they count as months only
# when capitalised or introduced by "on"/"of" ("I may 3D-print it", "we march 5 miles").
_AMBIGUOUS_MONTHS = frozenset({"may", "march"})


def _alternation(words: Iterable[str]) -> str:
    # Longest first, so "september" wins over "sep" and "the day before yesterday" over "yesterday".
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_MONTH = rf"(?P<month>{_alternation(_MONTHS)})\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})(?!\d)"
_COUNT = rf"(?P<count>\d{{1,3}}|{_alternation(_NUMBER_WORDS)})"
_UNIT = r"(?P<unit>day|week|month|year)s?"
# "in exactly two weeks", "about 3 days from now": the hedge does not change the day.
_ABOUT = r"(?:exactly|just|about|around|roughly|only)"


MentionKind = Literal["relative", "dated", "yearless"]


@dataclass(frozen=True)
class DateMention:
    """One resolvable date expression found in a text, with its position.

    `kind` is "yearless" for a calendar date without a year ("May 3"), whose year was guessed;
    callers that see a recurring cue ("my birthday is May 3") can ignore such a mention.
    """

    text: str
    start: int
    end: int
    day: date
    kind: MentionKind = "relative"


def _add_months(day: date, months: int) -> date:
    years, month_index = divmod(day.month - 1 + months, 12)
    year = day.year + years
    month = month_index + 1
    # Clamp: one month after January 31 is the last day of February.
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _shift(day: date, unit: str, count: int) -> date:
    if unit == "day":
        return day + timedelta(days=count)
    if unit == "week":
        return day + timedelta(weeks=count)
    if unit == "month":
        return _add_months(day, count)
    return _add_months(day, 12 * count)


def _count(raw: str) -> int:
    raw = " ".join(raw.lower().split())
    return int(raw) if raw.isdigit() else _NUMBER_WORDS[raw]


def _calendar_day(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:  # "February 30", "2024-13-01"
        return None


def _yearless(month: int, day: int, ref: date, tense: Tense) -> date | None:
    resolved = _calendar_day(ref.year, month, day)
    if resolved is None:
        # February 29 outside a leap year: try the neighbouring year the tense points to.
        if tense == "past":
            return _calendar_day(ref.year - 1, month, day)
        return _calendar_day(ref.year + 1, month, day) if tense == "future" else None
    if tense == "past" and resolved > ref:
        return _calendar_day(ref.year - 1, month, day)
    if tense == "future" and resolved < ref:
        return _calendar_day(ref.year + 1, month, day)
    return resolved


def _month_and_day(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    month = _MONTHS[match["month"].lower()]
    day = int(match["day"])
    if match["year"]:
        return _calendar_day(int(match["year"]), month, day)
    return _yearless(month, day, ref, tense)


def _iso(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    return _calendar_day(int(match["year"]), int(match["month"]), int(match["day"]))


def _named_day(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    return ref + timedelta(days=_NAMED_DAYS[" ".join(match[0].lower().split())])


def _period(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    sign = -1 if match["dir"].lower() == "last" else 1
    unit = match["unit"].lower()
    return _shift(ref, unit, sign) if unit != "week" else ref + timedelta(days=7 * sign)


def _weekday(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    target = _WEEKDAYS.index(match["weekday"].lower())
    direction = " ".join(match["dir"].lower().split())
    forward = direction == "next" or (direction == "on" and tense == "future")
    if forward:
        return ref + timedelta(days=(target - ref.weekday() - 1) % 7 + 1)
    return ref - timedelta(days=(ref.weekday() - target - 1) % 7 + 1)


def _this_weekday(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    """ "this Friday": the coming one (today if it is Friday), or the one just gone in the past tense."""
    target = _WEEKDAYS.index(match["weekday"].lower())
    if tense == "past":
        return ref - timedelta(days=(ref.weekday() - target) % 7)
    return ref + timedelta(days=(target - ref.weekday()) % 7)


def _weekend(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    """ "this weekend" is the coming Saturday (or today, at the weekend); "next weekend" a week on."""
    saturday = ref + timedelta(days=5 - ref.weekday())  # of this week (yesterday, said on a Sunday)
    direction = match["dir"].lower()
    if direction == "this":
        return max(saturday, ref)  # said on a Sunday, "this weekend" is today
    return saturday + timedelta(days=7 if direction == "next" else -7)


def _day_of_month(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    """ "on the 22nd": this month's 22nd, or the next (previous, in the past tense) month's when the
    day has already passed (is still ahead)."""
    day = int(match["day"])
    this = _calendar_day(ref.year, ref.month, day)
    if tense == "past":
        if this is not None and this <= ref:
            return this
        earlier = _add_months(ref.replace(day=1), -1)
        return _calendar_day(earlier.year, earlier.month, day)
    if this is not None and this >= ref:
        return this
    later = _add_months(ref.replace(day=1), 1)
    return _calendar_day(later.year, later.month, day)


def _from_now(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    return _shift(ref, match["unit"].lower(), _count(match["count"]))


_HOLIDAYS = {
    "christmas day": (12, 25),
    "christmas eve": (12, 24),
    "christmas": (12, 25),
    "boxing day": (12, 26),
    "new year's eve": (12, 31),
    "new years eve": (12, 31),
    "new year's day": (1, 1),
    "new years day": (1, 1),
    "halloween": (10, 31),
    "valentine's day": (2, 14),
    "valentines day": (2, 14),
}


def _holiday(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    month, day = _HOLIDAYS[" ".join(match[0].lower().split()).removeprefix("on ")]
    return _yearless(month, day, ref, tense)


def _week_from_tomorrow(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    return ref + timedelta(days=8)


def _ago(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    return _shift(ref, match["unit"].lower(), -_count(match["count"]))


def _in(match: re.Match[str], ref: date, tense: Tense) -> date | None:
    return _shift(ref, match["unit"].lower(), _count(match["count"]))


_Resolver = Callable[[re.Match[str], date, Tense], date | None]

# Each expression: (regex, resolver). Order does not matter: overlaps go to the longest match.
_PATTERNS: tuple[tuple[re.Pattern[str], _Resolver], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), resolver)
    for pattern, resolver in (
        (r"\b(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})(?![\d-])", _iso),
        (rf"\b{_MONTH}\s+(?:the\s+)?{_DAY}(?!\d)(?:(?:\s*,\s*|\s+){_YEAR})?(?![\w-])", _month_and_day),
        # A range starts on its first day: "from 3 to 17 December", "on 5 and 6 December".
        (
            rf"\b{_DAY}\s*(?:-|\u2013|to|and|until|till)\s*\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?![\w-])"
            rf"(?:(?:\s*,\s*|\s+){_YEAR})?",
            _month_and_day,
        ),
        (rf"\b(?:{_alternation(_HOLIDAYS)})\b", _holiday),
        (r"\b(?:a|one)\s+week\s+from\s+tomorrow\b", _week_from_tomorrow),
        (rf"\b(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH}(?![\w-])(?:(?:\s*,\s*|\s+){_YEAR})?", _month_and_day),
        (rf"\b(?:{_alternation(_NAMED_DAYS)})\b", _named_day),
        (r"\b(?P<dir>last|next)\s+(?P<unit>week|month|year)\b", _period),
        (rf"\b(?P<dir>on|last|next|this\s+past)\s+(?P<weekday>{'|'.join(_WEEKDAYS)})\b", _weekday),
        (rf"\b{_COUNT}\s+{_UNIT}\s+ago\b", _ago),
        (rf"\bin\s+(?:{_ABOUT}\s+)?{_COUNT}\s+{_UNIT}\b", _in),
        (rf"\b(?:{_ABOUT}\s+)?{_COUNT}\s+{_UNIT}\s+(?:from\s+(?:now|today)|later)\b", _from_now),
        (rf"\bthis\s+(?:coming\s+)?(?P<weekday>{'|'.join(_WEEKDAYS)})\b", _this_weekday),
        (r"\b(?P<dir>this|next|last)\s+weekend\b", _weekend),
        (r"\b(?:on\s+)?the\s+(?P<day>\d{1,2})(?:st|nd|rd|th)\b", _day_of_month),
    )
)


def _is_ambiguous_month(match: re.Match[str]) -> bool:
    """A lower-case "may"/"march" in running text that is probably not a month."""
    groups = match.groupdict()
    word = groups.get("month")
    if word is None or word.lower() not in _AMBIGUOUS_MONTHS or word[0].isupper():
        return False
    if re.search(r"\bof\s+" + re.escape(word) + "$", match[0], re.IGNORECASE):
        return False  # "3rd of may"
    before = match.string[: match.start()]
    return re.search(r"\b(?:on|of)\s+$", before, re.IGNORECASE) is None


def _kind(match: re.Match[str]) -> MentionKind:
    groups = match.groupdict()
    if groups.get("year"):
        return "dated"
    return "yearless" if groups.get("month") else "relative"


# "my last year of dentistry", "the next week of the course": a period of something, not a date.
_OF_SOMETHING_BEFORE = re.compile(r"\b(?:my|our|his|her|their|your|the|final|first)\s+$", re.IGNORECASE)
_OF_SOMETHING_AFTER = re.compile(r"^\s+(?:of|at|in)\b", re.IGNORECASE)


def _is_period_of_something(match: re.Match[str]) -> bool:
    if "dir" not in match.groupdict() or "unit" not in match.groupdict():
        return False
    return bool(
        _OF_SOMETHING_BEFORE.search(match.string[: match.start()])
        or _OF_SOMETHING_AFTER.match(match.string[match.end() :])
    )


def _mentions(text: str, ref: date, tense: Tense, *, guard_ambiguous: bool) -> list[DateMention]:
    found: list[DateMention] = []
    for regex, resolver in _PATTERNS:
        for match in regex.finditer(text):
            if guard_ambiguous and (_is_ambiguous_month(match) or _is_period_of_something(match)):
                continue
            day = resolver(match, ref, tense)
            if day is not None:
                found.append(DateMention(match[0], match.start(), match.end(), day, _kind(match)))
    # Keep the longest of overlapping matches ("May 3rd, 2024" over "May 3rd"); ties go to the earlier.
    chosen: list[DateMention] = []
    for mention in sorted(found, key=lambda m: (-(m.end - m.start), m.start)):
        if all(mention.end <= c.start or mention.start >= c.end for c in chosen):
            chosen.append(mention)
    return sorted(chosen, key=lambda m: m.start)


def find_date_mentions(text: str, *, reference: datetime, tense: Tense = "any") -> list[DateMention]:
    """Every resolvable date expression in `text`, in text order, without overlaps."""
    return _mentions(text, reference.date(), tense, guard_ambiguous=True)


def find_dates(text: str, *, reference: datetime, tense: Tense = "any") -> list[tuple[str, date]]:
    """Every resolvable date expression in `text` as (matched text, resolved date), in text order."""
    return [(m.text, m.day) for m in find_date_mentions(text, reference=reference, tense=tense)]


def resolve_date(expression: str, *, reference: datetime, tense: Tense = "any") -> date | None:
    """The date `expression` (and nothing else) stands for, or None when it is not resolvable."""
    cleaned = expression.strip().strip(".,;:!?").strip()
    # An explicit expression is taken at its word: "may 3" here is a month.
    mentions = _mentions(cleaned, reference.date(), tense, guard_ambiguous=False)
    if len(mentions) == 1 and mentions[0].start == 0 and mentions[0].end == len(cleaned):
        return mentions[0].day
    return None


def spoken_date(day: date, *, year: bool = True) -> str:
    """ "3 March 2027" (or "3 March" for a date that comes back every year): how memory texts say a
    day, unambiguous for people and models alike, and what people type when they search."""
    return f"{day.day} {calendar.month_name[day.month]}" + (f" {day.year}" if year else "")


def spoken_epoch(epoch: float, *, year: bool = True) -> str:
    """`spoken_date` of an epoch second (UTC)."""
    return spoken_date(datetime.fromtimestamp(epoch, tz=UTC).date(), year=year)


def to_epoch(day: date) -> float:
    """Midnight UTC at the start of `day`, in epoch seconds."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
