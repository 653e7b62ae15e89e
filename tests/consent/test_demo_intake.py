"""The demo's brain MR series goes through the real intake pipeline, once."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from annotate.models import Dataset, Image
from consent.models import IntakeItem

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_ocr")]


def test_load_demo_donates_the_brain_mr_series_through_intake(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("load_demo", "--limit", "40")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("load_demo", "--limit", "40")

    dataset = Dataset.objects.get(slug="brain-mr-anatomy")
    items = IntakeItem.objects.filter(batch__dataset=dataset)
    assert (dataset.task, dataset.modality, dataset.classes.count()) == ("segmentation", "MR", 0)
    assert items.count() == 40
    assert set(items.values_list("status", flat=True)) == {"accepted"}
    images = Image.objects.filter(dataset=dataset)
    assert images.count() == 40
    assert set(images.values_list("modality", "width", "height")) == {("MR", 64, 64)}
    assert images.values("donor").distinct().count() == 1
