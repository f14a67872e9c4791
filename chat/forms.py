from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm

from chat.titles import MAX_TITLE_CHARS, clean_title


class SignupForm(UserCreationForm):
    pass


class TitleField(forms.CharField):
    """A chat title: cleaned (core.text.clean_text, one line) before it is checked, so control
    characters are dropped rather than refused, and a title of nothing but them is no title."""

    def to_python(self, value: Any) -> str:
        return clean_title(str(super().to_python(value)))


class RenameForm(forms.Form):
    title = TitleField(
        max_length=MAX_TITLE_CHARS,
        error_messages={
            "required": "Give the chat a title.",
            "max_length": f"A title has at most {MAX_TITLE_CHARS} characters.",
        },
    )
