from __future__ import annotations

import json

from django import forms
from django.utils import timezone

from consent.models import ConsentForm

DECISION_CHOICES = [("permit", "Yes, I agree"), ("deny", "No")]


def _decision_fields(form: ConsentForm) -> dict[str, forms.Field]:
    return {
        f"purpose_{value}": forms.ChoiceField(
            label=label, choices=DECISION_CHOICES, widget=forms.RadioSelect, required=True
        )
        for value, label in form.purpose_choices()
    }


class DecisionsMixin:
    """One required permit/deny radio group per purpose of the consent form (no default)."""

    def add_decisions(self, consent_form: ConsentForm) -> None:
        self.consent_form = consent_form
        self.fields.update(_decision_fields(consent_form))  # type: ignore[attr-defined]

    def decisions(self) -> dict[str, str]:
        data = self.cleaned_data  # type: ignore[attr-defined]
        return {p: data[f"purpose_{p}"] for p in self.consent_form.purposes}


class ConsentSignForm(DecisionsMixin, forms.Form):
    def __init__(self, *args, consent_form: ConsentForm, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.add_decisions(consent_form)


class PaperConsentForm(DecisionsMixin, forms.Form):
    given_on = forms.DateField(
        label="Date on the signed sheet", widget=forms.DateInput(attrs={"type": "date"})
    )
    donor_pseudonym = forms.CharField(
        label="Donor ID (known donors only)",
        required=False,
        max_length=20,
        help_text="Leave empty for a new donor: a donor ID and revocation code are created.",
    )
    revocation_code = forms.CharField(
        label="Donor's revocation code (known donors only)", required=False, max_length=40
    )

    def __init__(self, *args, consent_form: ConsentForm, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.add_decisions(consent_form)

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        if data.get("donor_pseudonym") and not data.get("revocation_code"):
            self.add_error("revocation_code", "A known donor's revocation code is required.")
        given_on = data.get("given_on")
        if given_on and given_on > timezone.localdate():
            self.add_error("given_on", "The date cannot be in the future.")
        return data


class WithdrawWithCodeForm(forms.Form):
    donor_id = forms.CharField(label="Donor ID", max_length=20, help_text="Starts with D-.")
    code = forms.CharField(
        label="Revocation code", max_length=40, help_text="Four groups of four letters or digits."
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):  # type: ignore[no-untyped-def]
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    consent = forms.ModelChoiceField(queryset=None, label="Under which consent")  # type: ignore[arg-type]
    dataset = forms.ModelChoiceField(
        queryset=None,  # type: ignore[arg-type]
        label="What do the images show?",
        empty_label="Choose the collection they belong to",
        help_text="Images go to the games of this collection; ones that do not fit it are "
        "flagged for review, never silently used.",
    )
    files = MultipleFileField(
        label="Images",
        help_text="DICOM, PNG or JPEG files, or a zip of them. Every file is de-identified "
        "before it is stored; the original is not kept.",
        widget=MultipleFileInput(
            attrs={"accept": ".dcm,.dicom,.png,.jpg,.jpeg,.zip,application/dicom,image/*"}
        ),
    )

    def __init__(self, *args, consents, datasets, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["consent"].queryset = consents
        self.fields["consent"].label_from_instance = lambda c: (
            f"{c.form.title} v{c.form.version}, given {c.given_at:%Y-%m-%d}"
            + (f" (donor {c.donor.pseudonym})" if c.method == "paper" else "")
        )
        self.fields["dataset"].queryset = datasets
        self.fields["dataset"].label_from_instance = lambda d: (
            f"{d.name}" + (f" ({d.modality})" if d.modality else "")
        )
        if datasets.count() == 1:
            self.fields["dataset"].initial = datasets.first()
        if consents.count() == 1:
            self.fields["consent"].initial = consents.first()


class ReviewForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("release", "Release"), ("redact", "Black out and release"), ("reject", "Reject")]
    )
    boxes = forms.CharField(required=False, widget=forms.HiddenInput)
    reason = forms.CharField(required=False, max_length=200)

    def clean_boxes(self) -> list[dict]:
        raw = self.cleaned_data.get("boxes") or "[]"
        try:
            boxes = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError("The regions could not be read.") from exc
        if not isinstance(boxes, list) or not all(isinstance(b, dict) for b in boxes):
            raise forms.ValidationError("The regions could not be read.")
        return boxes
