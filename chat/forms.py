from django import forms
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    pass


class RenameForm(forms.Form):
    title = forms.CharField(max_length=200, strip=True)
