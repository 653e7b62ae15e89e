from django import forms
from django.contrib.auth.password_validation import password_validators_help_text_html

from accounts.roles import Role


class SignUpForm(forms.Form):
    username = forms.RegexField(
        regex=r"^[\w.@+-]{3,40}$",
        max_length=40,
        help_text="3–40 letters, digits and @/./+/-/_ — shown nowhere unless you choose it as your player name.",
        error_messages={"invalid": "Use 3–40 letters, digits and @ . + - _ only."},
    )
    display_name = forms.CharField(
        label="Player name",
        max_length=40,
        required=False,
        help_text="Your name on leaderboards (optional).",
    )
    email = forms.EmailField(required=False, help_text="Optional: only for password resets.")
    role = forms.ChoiceField(
        choices=[
            (Role.VOLUNTEER.value, "Play games and label images"),
            (Role.DONOR.value, "Donate my images"),
        ],
        initial=Role.VOLUNTEER.value,
        widget=forms.RadioSelect,
        label="I want to",
    )
    password1 = forms.CharField(
        label="Password", widget=forms.PasswordInput, help_text=password_validators_help_text_html()
    )
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput)

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data
