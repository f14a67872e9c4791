"""Inspector forms: they check shape (choices, numbers, lengths); the engine checks meaning
(memory.query / memory.services raise InvalidInput with a message we show as is)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import MaxLengthValidator

from core.models import NAME_MAX_LENGTH
from memory.query import MAX_ID_LENGTH, MAX_TAG_LENGTH, normalise_tags, validate_scope_id
from memory.scoring import SEARCH_MODES
from memory.topics import is_internal_topic, typed_topic
from memory.types import InvalidInput, MemoryType

TYPE_CHOICES = [(t.value, t.value) for t in MemoryType]
MODE_CHOICES = [
    ("hybrid", "hybrid (vector + keyword)"),
    ("semantic", "semantic (vector only)"),
    ("keyword", "keyword (BM25 only)"),
]
assert {m for m, _ in MODE_CHOICES} == set(SEARCH_MODES)
SORT_CHOICES = [("updated_at", "last updated"), ("created_at", "created")]
TTL_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
# Ten years: beyond any retention policy, far below Redis' EXPIRE limits.
MAX_TTL_SECONDS = 10 * 365 * 86400
MAX_REASON = 500


def _limit(field: forms.Field, limit: int) -> None:
    """A length limit read from settings per form, so a changed setting applies without a restart."""
    field.validators.append(MaxLengthValidator(limit))
    field.widget.attrs["maxlength"] = str(limit)


def split_tags(raw: str) -> list[str]:
    """Topics typed as "travel, food" (the engine lower-cases, trims and de-duplicates them)."""
    return [part.strip() for part in raw.split(",") if part.strip()]


class UserLookupForm(forms.Form):
    # Stripping a pasted id is safe: no user id starts or ends with a space (validate_scope_id).
    # An id Engram stores memories under, or the username or email of a signed-up account.
    user_id = forms.CharField(label="User id, username or email", max_length=MAX_ID_LENGTH, strip=True)

    def clean_user_id(self) -> str:
        try:
            return validate_scope_id(self.cleaned_data.get("user_id"), name="A user id")
        except InvalidInput as exc:
            raise forms.ValidationError(str(exc)) from exc


class MemoryQueryForm(forms.Form):
    """The user page's filter and search. Empty `q` lists memories; a `q` searches them."""

    q = forms.CharField(label="Search", required=False, max_length=2000, strip=True)
    mode = forms.ChoiceField(label="Mode", choices=MODE_CHOICES, required=False)
    type = forms.ChoiceField(label="Type", choices=[("", "any type"), *TYPE_CHOICES], required=False)
    topic = forms.CharField(label="Topic", required=False, max_length=MAX_TAG_LENGTH, strip=True)
    pinned = forms.BooleanField(label="Pinned only", required=False)
    sort = forms.ChoiceField(label="Sort by", choices=SORT_CHOICES, required=False)
    page = forms.IntegerField(label="Page", required=False, min_value=1, max_value=10_000)

    def clean_mode(self) -> str:
        return str(self.cleaned_data.get("mode") or "hybrid")

    def clean_sort(self) -> str:
        return str(self.cleaned_data.get("sort") or "updated_at")

    def clean_page(self) -> int:
        return int(self.cleaned_data.get("page") or 1)


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason", required=False, max_length=MAX_REASON, strip=True)


class EditMemoryForm(ReasonForm):
    text = forms.CharField(label="Text", widget=forms.Textarea(attrs={"rows": 4}), strip=True)
    type = forms.ChoiceField(label="Type", choices=TYPE_CHOICES)
    topics = forms.CharField(
        label="Topics", required=False, max_length=2000, help_text="Comma-separated, e.g. travel, food"
    )
    expected_version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    field_order = ["text", "type", "topics", "reason", "expected_version"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _limit(self.fields["text"], settings.MEMORY_MAX_TEXT_CHARS)

    def clean_topics(self) -> list[str]:
        """The visible topics as stored (lower case, no '#'). The engine's own markers are refused,
        not dropped: staff should know the form did not take them."""
        typed = [typed_topic(t) for t in split_tags(self.cleaned_data.get("topics") or "")]
        internal = [t for t in typed if is_internal_topic(t)]
        if internal:
            raise forms.ValidationError(
                f"slot: and said-by: topics are set by Engram; remove {', '.join(internal)} from the topics."
            )
        try:
            return normalise_tags(typed, name="topics")
        except InvalidInput as exc:
            raise forms.ValidationError(str(exc)) from exc


class FlagForm(ReasonForm):
    """Pin/unpin, lock/unlock: `value` is the state to set ("1" or "0")."""

    value = forms.TypedChoiceField(choices=[("1", "on"), ("0", "off")], coerce=lambda v: v == "1")


class TtlForm(ReasonForm):
    amount = forms.IntegerField(label="Amount", min_value=1, max_value=MAX_TTL_SECONDS)
    unit = forms.ChoiceField(label="Unit", choices=[(u, u) for u in TTL_UNITS], initial="hours")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "amount" in data and "unit" in data:
            seconds = int(data["amount"]) * TTL_UNITS[data["unit"]]
            if seconds > MAX_TTL_SECONDS:
                raise forms.ValidationError("At most 10 years (3650 days).")
            data["seconds"] = seconds
        return data


class RestoreVersionForm(forms.Form):
    version = forms.IntegerField(min_value=1)
    expected_version = forms.IntegerField(min_value=1, required=False)


class SandboxForm(forms.Form):
    message = forms.CharField(label="Message", widget=forms.Textarea(attrs={"rows": 3}), strip=True)
    session_id = forms.CharField(
        label="Session (optional)",
        required=False,
        max_length=MAX_ID_LENGTH,
        strip=True,
        help_text="Use this session's summary and recent messages; leave empty for a fresh session.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _limit(self.fields["message"], settings.MESSAGE_MAX_CHARS)


class EraseForm(forms.Form):
    # No stripping: an id with surrounding spaces is a different id.
    confirm = forms.CharField(label="Type the user id to confirm", max_length=MAX_ID_LENGTH, strip=False)

    def __init__(self, *args: Any, user_id: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user_id = user_id

    def clean_confirm(self) -> str:
        value = str(self.cleaned_data.get("confirm", ""))
        if value != self.user_id:
            raise forms.ValidationError("That is not this user's id; nothing was erased.")
        return value


ROLE_CHOICES = [
    ("app", "app: one agent's memories in its namespaces"),
    ("staff", "staff: every user's memories, pins, locks and erase"),
]


class ApiKeyForm(forms.Form):
    """A new API key. core.api_keys checks the meaning (ids, namespaces, limits) and says what is wrong."""

    name = forms.CharField(
        label="Name", max_length=NAME_MAX_LENGTH, help_text="A unique label, e.g. the app's name"
    )
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, initial="app")
    agent_id = forms.CharField(label="Agent id", max_length=MAX_ID_LENGTH, initial="engram")
    namespaces = forms.CharField(
        label="Namespaces",
        max_length=2000,
        initial="default",
        help_text="Comma-separated; an app key needs one",
    )
    rate_limit_per_minute = forms.IntegerField(
        label="Requests per minute", min_value=1, max_value=600_000, initial=600
    )

    def __init__(self, *args: Any, allow_staff: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not allow_staff:
            # Without the inspector's change permission only app keys: a staff key could erase,
            # pin and lock through the API what this member may not touch here.
            role = self.fields["role"]
            assert isinstance(role, forms.ChoiceField)
            role.choices = [c for c in ROLE_CHOICES if c[0] != "staff"]
            role.help_text = "Staff keys need the permission to change memories too"

    def clean_namespaces(self) -> list[str]:
        return split_tags(str(self.cleaned_data.get("namespaces", "")))
