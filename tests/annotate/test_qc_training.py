"""Intake QC training and scoring on real chest X-rays (1 epoch: the plumbing, not the accuracy,
which tests/ml/qc and bench/qc_detectors.py measure)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image as PILImage

from annotate.models import Image, ImageQc, QcModelVersion
from annotate.qc.scoring import _MODELS, qc_dataset_score, qc_image_score
from annotate.qc.training import qc_train
from annotate.services import dataset_ensure, image_create
from tessera.demo import clean_raster
from tessera.errors import ApplicationError, Conflict
from tests.factories import ConsentFactory, DatasetFactory, ImageFactory

ROOT = Path(__file__).resolve().parents[2]
N_IMAGES = 24


@pytest.fixture
def chest(db, settings):
    """24 real chest X-rays from 6 donors, one more confirmed unusable by a reviewer."""
    settings.TORCH_THREADS = 2
    root = Path(settings.DATA_DIR) / "images" / "chest_xray_kermany_subset"
    rows = list(csv.DictReader((root / "labels.csv").open()))[: N_IMAGES + 1]
    dataset = dataset_ensure(
        slug="chest-qc", name="Chest QC", classes=[("NORMAL", "Normal"), ("PNEUMONIA", "Pneumonia")]
    )
    consents = [ConsentFactory() for _ in range(6)]
    for k, row in enumerate(rows):
        image_create(
            dataset=dataset,
            consent=consents[k % 6],
            clean=clean_raster(root / "images" / row["file"]),
            source_ref=row["file"],
            status=Image.Status.UNUSABLE if k == N_IMAGES else Image.Status.ACTIVE,
        )
    _MODELS.clear()
    return dataset


def test_training_on_real_images_stores_a_calibrated_model_that_scores_the_dataset(chest):
    version = qc_train(dataset_id=chest.pk, epochs=1)

    assert (version.version, version.status, version.error) == (1, "ready", "")
    assert version.file.name.startswith(f"qc/{chest.pk}/v1-")
    assert (version.n_images, version.n_excluded) == (N_IMAGES, 0)
    assert (
        set(version.enabled) == set(version.thresholds) == {"rotation", "flip", "inversion", "ood"}
    )
    assert version.enabled["ood"] is True
    assert all(np.isfinite(t) for t in version.thresholds.values())
    metrics = version.metrics
    assert metrics["n_train"] + metrics["n_calibration"] == N_IMAGES
    assert metrics["grouped_by_donor"] is True
    assert set(metrics["validation_auc"]) == {"rotation", "flip", "inversion"}
    assert metrics["known_bad"]["n"] == 1  # the unusable image: scored, never trained on

    result = qc_dataset_score(dataset_id=chest.pk)

    assert (result.n_scored, result.model_version) == (N_IMAGES, 1)
    rows = ImageQc.objects.filter(dataset=chest)
    assert rows.count() == N_IMAGES
    assert all(r.qc_model_id == version.pk and np.isfinite(r.ood_score) for r in rows)
    flagged = {r.image_id for r in rows if r.state == "pending"}
    quarantined = set(
        Image.objects.filter(dataset=chest, status="quarantined").values_list("id", flat=True)
    )
    assert flagged == quarantined and result.n_flagged == len(flagged)


def test_an_upside_down_intake_image_is_scored_with_the_trained_model(chest):
    qc_train(dataset_id=chest.pk, epochs=1)
    image = Image.objects.filter(dataset=chest, status="active").first()
    with image.file.open("rb") as handle, PILImage.open(handle) as pil:
        out = io.BytesIO()
        pil.rotate(180).save(out, format="PNG")
    rotated = ImageFactory(dataset=chest, file=ContentFile(out.getvalue(), name="upside.png"))

    qc = qc_image_score(image_id=rotated.pk)

    assert qc is not None and qc.qc_model.version == 1
    assert qc.p_rotated is None or 0.0 <= qc.p_rotated <= 1.0
    assert qc.scores["fix_angle_cw"] in (0, 90, 180, 270)


def test_one_training_at_a_time(chest):
    QcModelVersion.objects.create(dataset=chest, version=1, started_at=timezone.now())

    with pytest.raises(Conflict, match="already training"):
        qc_train(dataset_id=chest.pk, epochs=1)
    assert QcModelVersion.objects.filter(dataset=chest).count() == 1


def test_too_few_images_is_a_recorded_failure(db):
    dataset = DatasetFactory()
    ImageFactory(dataset=dataset)

    with pytest.raises(ApplicationError, match="Not enough accepted images"):
        qc_train(dataset_id=dataset.pk, epochs=1)
    version = QcModelVersion.objects.get(dataset=dataset)
    assert version.status == "failed" and "Not enough accepted images" in version.error


def test_the_qc_web_modules_never_import_torch():
    code = (
        "import sys, django; django.setup(); "
        "from django.urls import get_resolver; get_resolver().url_patterns; "
        "import annotate.qc.views, annotate.qc.services, annotate.qc.selectors, "
        "annotate.qc.scoring, annotate.qc.training, annotate.tasks, consent.services.intake; "
        "print('torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TESSERA_DATA_DIR")}
    result = subprocess.run(  # noqa: S603 - our own interpreter with a fixed program
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "tessera.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.stdout.strip() == "False", result.stderr
