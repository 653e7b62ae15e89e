"""The demo loader reads the real shared data; it must fail loudly if the data is missing."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from annotate.models import Annotation, Consensus, Dataset, GoldMask, Image
from consent.models import Consent
from games.contour.models import RaceEntry


def test_demo_data_is_present(settings):
    assert (settings.DATA_DIR / "images" / "chest_xray_kermany_subset" / "labels.csv").is_file(), (
        f"shared data missing under {settings.DATA_DIR}: the demo loader and these tests need it"
    )


def test_load_demo_is_idempotent_and_complete(db, settings):
    settings.DEBUG = True

    call_command("load_demo", "--limit", "14")
    first = (
        Image.objects.count(),
        Consent.objects.count(),
        User.objects.count(),
        Annotation.objects.count(),
    )
    call_command("load_demo", "--limit", "14")
    second = (
        Image.objects.count(),
        Consent.objects.count(),
        User.objects.count(),
        Annotation.objects.count(),
    )

    assert first == second
    # Two classification datasets and the segmentation one, 14 images each.
    assert Image.objects.count() == 42
    outlines = Dataset.objects.get(slug="skin-lesion-outlines")
    assert (outlines.task, outlines.target_structure) == ("segmentation", "Skin lesion")
    # Every second image carries the expert mask as gold; the rest are scored by consensus.
    assert GoldMask.objects.filter(image__dataset=outlines).count() == 7
    # Seeded demo races (labelled demo data) on the gold images that are not reference examples,
    # so a lone player has ghosts; a second run adds none.
    seeded = RaceEntry.objects.filter(image__dataset=outlines)
    assert seeded.count() == 3 * (7 - 3)
    assert set(seeded.values_list("player__username", flat=True)) == {
        "seed-racer-1",
        "seed-racer-2",
        "seed-racer-3",
    }
    assert not seeded.filter(image__gold_mask__isnull=True).exists()
    chest = Dataset.objects.get(slug="chest-xray-pneumonia")
    assert [c.code for c in chest.classes.all()] == ["NORMAL", "PNEUMONIA"]
    assert set(chest.images.values_list("gold_class__code", flat=True)) >= {"NORMAL", "PNEUMONIA"}
    assert all(i.width > 0 and i.file and i.thumbnail for i in Image.objects.all())
    usernames = set(User.objects.values_list("username", flat=True))
    assert {
        "demo-donor",
        "demo-volunteer",
        "demo-clinician",
        "demo-researcher",
        "demo-coordinator",
        "demo-admin",
    } <= usernames
    # The simulated crowd labelled a share of each dataset and consensus ran on it.
    crowd = User.objects.filter(username__startswith="demo-crowd-")
    assert crowd.count() == 12
    assert not any(player.has_usable_password() for player in crowd)
    for dataset in Dataset.objects.filter(task=Dataset.Task.CLASSIFICATION):
        labelled = Annotation.objects.filter(image__dataset=dataset).values("image").distinct()
        assert 0 < labelled.count() < dataset.images.count()
        assert Consensus.objects.filter(image__dataset=dataset).count() == labelled.count()


def test_demo_images_carry_no_metadata(db, settings):
    from PIL import Image as PILImage

    call_command("load_demo", "--limit", "4")

    for image in Image.objects.all():
        with image.file.open("rb") as f, PILImage.open(f) as pil:
            assert pil.format == "PNG"
            assert not pil.info.get("exif")
            assert pil.getexif() == {}


def test_no_demo_accounts_without_debug(db, settings):
    settings.DEBUG = False

    call_command("load_demo", "--limit", "2")

    assert not User.objects.filter(username__startswith="demo-").exists()


def test_missing_data_is_a_clear_error(db, settings, tmp_path):
    settings.DATA_DIR = tmp_path

    with pytest.raises(CommandError, match="Demo data not found"):
        call_command("load_demo", "--limit", "2")
