"""Active learning in the platform: training on consensus, priorities, disagreement, pages."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.utils import timezone

from accounts.roles import Role
from annotate import learning
from annotate.models import Consensus, Image, ImagePriority, ModelVersion, ReviewItem
from annotate.selection import next_images_select
from annotate.services import dataset_ensure, image_create
from tessera.demo import clean_raster
from tessera.errors import ApplicationError, Conflict
from tests.factories import ConsentFactory, DatasetFactory, ImageFactory, user_with_role

ROOT = Path(__file__).resolve().parents[2]


def test_the_web_process_never_imports_torch():
    code = (
        "import sys, django; django.setup(); "
        "from django.urls import get_resolver; get_resolver().url_patterns; "
        "import tessera.asgi, annotate.learning, annotate.tasks, annotate.views, games.views; "
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


@pytest.fixture
def chest(db):
    """40 real chest X-rays: 28 with a crowd consensus (their true label), 12 gold."""
    root = Path(settings.DATA_DIR) / "images" / "chest_xray_kermany_subset"
    rows = list(csv.DictReader((root / "labels.csv").open()))
    rows = [r for r in rows if r["label"] == "NORMAL"][:20] + [
        r for r in rows if r["label"] == "PNEUMONIA"
    ][:20]
    dataset = dataset_ensure(
        slug="chest-al", name="Chest AL", classes=[("NORMAL", "Normal"), ("PNEUMONIA", "Pneumonia")]
    )
    classes = {c.code: c for c in dataset.classes.all()}
    consent = ConsentFactory()
    for k, row in enumerate(rows):
        image = image_create(
            dataset=dataset,
            consent=consent,
            clean=clean_raster(root / "images" / row["file"]),
            source_ref=row["file"],
            gold_class=classes[row["label"]] if k % 10 < 3 else None,
        )
        if image.gold_class_id is None:
            p = 0.9 if row["label"] == "NORMAL" else 0.1
            Consensus.objects.create(
                image=image,
                label_class=classes[row["label"]],
                posterior={"NORMAL": p, "PNEUMONIA": 1 - p},
                confidence=0.9,
                n_labels=3,
                n_players=3,
            )
    return dataset


def test_training_on_real_images_stores_a_measured_version_and_priorities(chest, settings):
    settings.TORCH_THREADS = 2

    first = learning.model_train(dataset_id=chest.pk, epochs=1)
    second = learning.model_train(dataset_id=chest.pk, epochs=1)

    assert (first.version, first.status, second.version, second.status) == (1, "ready", 2, "ready")
    assert first.n_train == 28 and first.n_labels == 84
    assert first.metrics["n_gold_test"] + first.metrics["n_gold_calibration"] == 12
    assert 0.0 <= first.metrics["gold_accuracy"] <= 1.0
    assert 0.0 <= first.metrics["ece"] <= 1.0
    assert first.metrics["warm_start_from"] is None
    assert second.metrics["warm_start_from"] == 1
    active = set(Image.objects.filter(dataset=chest, status="active").values_list("id", flat=True))
    priorities = ImagePriority.objects.filter(image__dataset=chest)
    assert set(priorities.values_list("image_id", flat=True)) == active
    assert all(p.model_version_id == second.pk for p in priorities)
    assert all(abs(sum(p.model_posterior.values()) - 1) < 1e-3 for p in priorities)
    assert all(np.isfinite(p.priority) for p in priorities)


def test_one_training_at_a_time(chest):
    ModelVersion.objects.create(dataset=chest, version=1, started_at=timezone.now())

    with pytest.raises(Conflict, match="already training"):
        learning.model_train(dataset_id=chest.pk, epochs=1)
    assert ModelVersion.objects.filter(dataset=chest).count() == 1


def test_too_little_data_is_a_recorded_failure(db):
    dataset = DatasetFactory()
    ImageFactory(dataset=dataset)

    with pytest.raises(ApplicationError, match="Not enough to learn from yet"):
        learning.model_train(dataset_id=dataset.pk, epochs=1)

    version = ModelVersion.objects.get(dataset=dataset)
    assert version.status == "failed"
    assert "Not enough to learn from yet" in version.error
    assert not learning.model_training_due(dataset_id=dataset.pk)


def test_training_is_due_when_consensus_grew(chest):
    assert learning.model_training_due(dataset_id=chest.pk) is True
    ModelVersion.objects.create(
        dataset=chest, version=1, status="ready", n_train=28, started_at=timezone.now()
    )
    assert learning.model_training_due(dataset_id=chest.pk) is False
    ModelVersion.objects.filter(dataset=chest).update(n_train=20)
    assert learning.model_training_due(dataset_id=chest.pk) is True


def test_the_selector_serves_the_highest_priority_first(db):
    dataset = DatasetFactory()
    images = [ImageFactory(dataset=dataset) for _ in range(6)]
    for rank, image in enumerate(images):
        ImagePriority.objects.create(image=image, dataset=dataset, priority=float(rank))
    player = user_with_role(Role.VOLUNTEER)

    chosen = next_images_select(
        player_id=player.pk, dataset=dataset, count=3, gold_rate=0.0, rng=np.random.default_rng(0)
    )

    # The three highest priorities (the board shuffles their order).
    assert {c.image_id for c in chosen} == {images[5].pk, images[4].pk, images[3].pk}


def _ready_version(dataset, **metrics):
    return ModelVersion.objects.create(
        dataset=dataset,
        version=1,
        status="ready",
        n_train=28,
        n_labels=84,
        metrics={
            "gold_accuracy": 0.83,
            "ece": 0.05,
            "temperature": 1.2,
            "n_gold_test": 6,
            **metrics,
        },
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )


def test_disagreement_opens_a_review_item_with_the_models_opinion(chest):
    version = _ready_version(chest)
    image = Consensus.objects.filter(image__dataset=chest).select_related("image").first().image
    crowd = Consensus.objects.get(image=image)
    other = "PNEUMONIA" if crowd.label_class.code == "NORMAL" else "NORMAL"

    opened = learning._open_disagreements(
        version,
        [image],
        np.array([[0.97, 0.03] if other == "NORMAL" else [0.03, 0.97]]),
        {image.pk: crowd},
        ["NORMAL", "PNEUMONIA"],
    )

    item = ReviewItem.objects.get(image=image, reason="disagreement")
    assert opened == 1
    assert item.details["model"]["label"] == other
    assert item.details["model"]["version"] == "v1"


def test_model_page_is_for_researchers_and_admins(chest, client):
    _ready_version(chest)
    client.force_login(user_with_role(Role.VOLUNTEER))
    assert client.get(f"/datasets/{chest.slug}/model/").status_code == 403

    client.force_login(user_with_role(Role.RESEARCHER))
    page = client.get(f"/datasets/{chest.slug}/model/").content.decode()

    assert "Current version" in page and "v1" in page
    assert "0.830 (6 images)" in page
    assert "Train a new version now" not in page  # admins only
    client.force_login(user_with_role(Role.ADMIN))
    assert (
        "Train a new version now" in client.get(f"/datasets/{chest.slug}/model/").content.decode()
    )


def test_priorities_beyond_what_the_player_has_seen_are_walked_to(db):
    dataset = DatasetFactory()
    images = [ImageFactory(dataset=dataset) for _ in range(8)]
    for rank, image in enumerate(images):
        ImagePriority.objects.create(image=image, dataset=dataset, priority=float(rank))
    player = user_with_role(Role.VOLUNTEER)
    rng = np.random.default_rng(0)

    first = next_images_select(
        player_id=player.pk, dataset=dataset, count=3, gold_rate=0.0, rng=rng
    )
    second = next_images_select(
        player_id=player.pk,
        dataset=dataset,
        count=3,
        gold_rate=0.0,
        rng=rng,
        exclude_image_ids=[c.image_id for c in first],
    )

    # Images already on the board are skipped: the second call continues down the ranking.
    assert {c.image_id for c in second} == {images[4].pk, images[3].pk, images[2].pk}
    assert not {c.image_id for c in first} & {c.image_id for c in second}
