"""Active learning in the platform: train the dataset's classifier on consensus, score every
image in play, store priorities for the next-images selector, flag crowd–model disagreement.

Runs only in Celery workers: torch is imported inside these functions (through `ml.al`), never
at module import, so a web process that imports this module never loads it. The selector only
reads `ImagePriority` rows; no request ever runs a model.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Max, Sum
from django.utils import timezone
from PIL import Image as PILImage

from annotate.models import (
    Consensus,
    Dataset,
    Image,
    ImagePriority,
    ModelVersion,
    PlayerSkill,
    ReviewItem,
)
from tessera.errors import ApplicationError, Conflict

logger = logging.getLogger(__name__)

IMAGE_SIZE = 64
MIN_TRAIN_IMAGES = 20
MIN_GOLD_IMAGES = 4
MC_PASSES = 8
# Retrain when the consensus has grown by this share (or this many images) since the last model.
RETRAIN_GROWTH = 0.2
RETRAIN_MIN_NEW = 50
# Crowd and model disagree: a confident model against a fairly confident crowd.
DISAGREE_MODEL = 0.9
DISAGREE_CROWD = 0.8
# Priorities of images that reached the label limit (the ml score is -inf there).
EXCLUDED_PRIORITY = -1.0


def _is_colour(dataset: Dataset) -> bool:
    sample = Image.objects.filter(dataset=dataset).exclude(file="").first()
    if sample is None:
        return False
    with sample.file.open("rb") as f, PILImage.open(f) as pil:
        return pil.mode not in ("L", "I", "I;16", "1", "LA")


def _pixels(images: list[Image], colour: bool) -> np.ndarray:
    """(n, C, 64, 64) float32 in [0, 1] from the stored de-identified derivatives."""
    mode = "RGB" if colour else "L"
    out = np.zeros((len(images), 3 if colour else 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for i, image in enumerate(images):
        with image.file.open("rb") as f, PILImage.open(f) as pil:
            arr = np.asarray(
                pil.convert(mode).resize((IMAGE_SIZE, IMAGE_SIZE), PILImage.Resampling.BILINEAR)
            )
        out[i] = (arr[None] if not colour else arr.transpose(2, 0, 1)) / 255.0
    return out


def _split_gold(images: list[Image]) -> tuple[list[Image], list[Image]]:
    """Deterministic halves of the gold images: one calibrates, the other measures."""
    calibration, test = [], []
    for image in images:
        digit = hashlib.sha256(image.public_id.bytes).digest()[0]
        (calibration if digit % 2 == 0 else test).append(image)
    return calibration, test


def model_train(*, dataset_id: int, epochs: int | None = None, seed: int = 0) -> ModelVersion:
    """Train a new model version on the dataset's consensus, calibrate it on gold, measure it on
    held-out gold, then re-score every image in play.

    Warm-starts from the latest ready version (training is resumable). Only one training per
    dataset at a time (a database constraint); a second request raises `Conflict`.
    """
    from ml.al.metrics import accuracy, expected_calibration_error, negative_log_likelihood
    from ml.al.model import (
        ModelConfig,
        calibrate,
        load_model,
        predict,
        save_model,
        train_classifier,
    )

    dataset = Dataset.objects.get(pk=dataset_id)
    classes = list(dataset.classes.order_by("order"))
    codes = [c.code for c in classes]
    previous = ModelVersion.objects.filter(
        dataset=dataset, status=ModelVersion.Status.READY
    ).first()
    try:
        with transaction.atomic():
            latest = (
                ModelVersion.objects.filter(dataset=dataset).aggregate(v=Max("version"))["v"] or 0
            )
            version = ModelVersion.objects.create(
                dataset=dataset, version=latest + 1, started_at=timezone.now()
            )
    except IntegrityError:
        raise Conflict("A model of this dataset is already training.") from None

    try:
        consensus = list(
            Consensus.objects.filter(
                image__dataset=dataset,
                image__status__in=(Image.Status.ACTIVE, Image.Status.RETIRED),
                image__gold_class__isnull=True,
            ).select_related("image")
        )
        gold = list(
            Image.objects.filter(
                dataset=dataset,
                status__in=(Image.Status.ACTIVE, Image.Status.RETIRED),
                gold_class__isnull=False,
            ).select_related("gold_class")
        )
        if len(consensus) < MIN_TRAIN_IMAGES or len(gold) < MIN_GOLD_IMAGES:
            raise ApplicationError(
                f"Not enough to learn from yet: {len(consensus)} images with consensus "
                f"(need {MIN_TRAIN_IMAGES}) and {len(gold)} gold images (need {MIN_GOLD_IMAGES})."
            )
        colour = _is_colour(dataset)
        x_train = _pixels([c.image for c in consensus], colour)
        targets = np.array([[c.posterior.get(code, 0.0) for code in codes] for c in consensus])
        targets = targets / targets.sum(axis=1, keepdims=True)
        weights = np.array([c.confidence for c in consensus])
        calibration, test = _split_gold(gold)
        code_index = {code: k for k, code in enumerate(codes)}
        config = ModelConfig(
            in_channels=3 if colour else 1,
            n_classes=len(codes),
            stem_stride=2,
            seed=seed,
            n_threads=settings.TORCH_THREADS,
            epochs=epochs or 15,
        )
        init = None
        if previous is not None and previous.file:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.pt"
                path.write_bytes(previous.file.read())
                candidate = load_model(path)
            if (candidate.config.in_channels, candidate.config.n_classes) == (
                config.in_channels,
                config.n_classes,
            ):
                init = candidate
        model = train_classifier(
            x_train,
            targets,
            weights,
            config,
            init=init,
            epochs=(max(2, config.epochs // 3) if init else None),
        )
        calibrate(
            model,
            _pixels(calibration, colour),
            np.array([code_index[g.gold_class.code] for g in calibration]),
        )
        y_test = np.array([code_index[g.gold_class.code] for g in test])
        probs = predict(model, _pixels(test, colour)).probs if test else np.zeros((0, len(codes)))
        n_labels = (
            Consensus.objects.filter(pk__in=[c.pk for c in consensus]).aggregate(n=Sum("n_labels"))[
                "n"
            ]
            or 0
        )
        metrics = {
            "gold_accuracy": accuracy(probs, y_test) if len(test) else None,
            "ece": expected_calibration_error(probs, y_test) if len(test) else None,
            "nll": negative_log_likelihood(probs, y_test) if len(test) else None,
            "n_gold_test": len(test),
            "n_gold_calibration": len(calibration),
            "temperature": float(model.temperature),
            "warm_start_from": previous.version if init is not None else None,
            "epochs": config.epochs,
            "image_size": IMAGE_SIZE,
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.pt"
            save_model(
                model,
                path,
                dataset=dataset.slug,
                version=version.version,
                classes=codes,
                metrics=metrics,
            )
            version.file.save("model.pt", ContentFile(path.read_bytes()), save=False)
        version.status = ModelVersion.Status.READY
        version.n_train, version.n_labels, version.metrics = len(consensus), n_labels, metrics
        version.finished_at = timezone.now()
        version.save()
    except Exception as exc:
        # Any failure (bad pixels, too little data, torch errors) leaves a readable record and
        # frees the dataset for the next training.
        version.status, version.error, version.finished_at = (
            ModelVersion.Status.FAILED,
            str(exc)[:2000],
            timezone.now(),
        )
        version.save(update_fields=["status", "error", "finished_at"])
        raise
    logger.info("model %s v%s: %s", dataset.slug, version.version, metrics)
    priorities_update(model_version=version)
    return version


def _average_confusion(dataset: Dataset, n_classes: int) -> np.ndarray:
    """The confusion matrix of an average player of this dataset (label-weighted)."""
    rows = list(
        PlayerSkill.objects.filter(dataset=dataset, n_labels__gt=0).values_list(
            "confusion", "n_labels"
        )
    )
    shaped = [(np.array(c), n) for c, n in rows if np.array(c).shape == (n_classes, n_classes)]
    if not shaped:
        return np.full((n_classes, n_classes), 0.2 / max(1, n_classes - 1)) + np.eye(n_classes) * (
            0.8 - 0.2 / max(1, n_classes - 1)
        )
    total = sum(n for _, n in shaped)
    return sum(c * n for c, n in shaped) / total


def priorities_update(*, model_version: ModelVersion, seed: int = 0) -> int:
    """Score every image in play with the model and store its active-learning priority.

    The combined priority (`ml.al.acquisition.combined_priority`: value of one more label given
    crowd and model, epistemic uncertainty, rarity) is reordered for batch diversity at the top
    and mixed with a share of random exploration. Crowd–model disagreements open review items.
    Returns the number of images scored.
    """
    from ml.al.acquisition import PriorityConfig, combined_priority, diverse_top_k
    from ml.al.model import predict

    dataset = model_version.dataset
    classes = list(dataset.classes.order_by("order"))
    codes = [c.code for c in classes]
    images = list(Image.objects.filter(dataset=dataset, status=Image.Status.ACTIVE).order_by("id"))
    if not images:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        from ml.al.model import load_model

        path = Path(tmp) / "model.pt"
        with model_version.file.open("rb") as f:
            path.write_bytes(f.read())
        model = load_model(path)
    prediction = predict(
        model, _pixels(images, model.config.in_channels == 3), mc_passes=MC_PASSES, seed=seed
    )
    consensus = {
        c.image_id: c
        for c in Consensus.objects.filter(image__in=images).select_related("label_class")
    }
    priors = np.ones(len(codes)) / len(codes)
    if consensus:
        priors = np.mean(
            [[c.posterior.get(code, 0.0) for code in codes] for c in consensus.values()], axis=0
        )
        priors = (priors + 1e-3) / (priors + 1e-3).sum()
    crowd = np.array(
        [
            [consensus[i.pk].posterior.get(code, 0.0) for code in codes]
            if i.pk in consensus
            else priors
            for i in images
        ]
    )
    crowd = crowd / crowd.sum(axis=1, keepdims=True)
    n_labels = np.array([consensus[i.pk].n_labels if i.pk in consensus else 0 for i in images])
    config = PriorityConfig(
        rarity_alpha=0.3 if len(codes) > 2 else 0.0, max_labels_per_image=dataset.max_labels
    )
    scores = combined_priority(
        config,
        crowd_posteriors=crowd,
        class_priors=priors,
        model_probs=prediction.probs,
        mc_probs=prediction.mc_probs,
        n_labels=n_labels,
        confusion=_average_confusion(dataset, len(codes)),
    )
    scores = np.where(np.isfinite(scores), scores, EXCLUDED_PRIORITY)
    # Batch diversity: the top picks are re-ranked so near-duplicates do not come in a row.
    top = diverse_top_k(
        np.where(scores > EXCLUDED_PRIORITY, scores, -np.inf),
        prediction.embeddings,
        min(100, len(images)),
        penalty=config.diversity,
    )
    ceiling = float(scores.max()) + 1.0
    final = scores.copy()
    for rank, index in enumerate(top):
        final[index] = ceiling + (len(top) - rank)
    # Exploration: a share of images gets a random place among the top ones.
    rng = np.random.default_rng(seed + model_version.version)
    explore = rng.random(len(images)) < config.exploration
    final[explore & (scores > EXCLUDED_PRIORITY)] = ceiling + rng.random(
        int((explore & (scores > EXCLUDED_PRIORITY)).sum())
    ) * len(top)
    rows = [
        ImagePriority(
            image=image,
            dataset=dataset,
            priority=float(final[k]),
            model_version=model_version,
            model_posterior={
                code: round(float(p), 4) for code, p in zip(codes, prediction.probs[k], strict=True)
            },
        )
        for k, image in enumerate(images)
    ]
    ImagePriority.objects.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["image"],
        update_fields=["dataset", "priority", "model_version", "model_posterior", "updated_at"],
    )
    _open_disagreements(model_version, images, prediction.probs, consensus, codes)
    return len(rows)


def _open_disagreements(model_version, images, probs, consensus, codes) -> int:  # type: ignore[no-untyped-def]
    from annotate.review.services import review_item_open

    opened = 0
    for k, image in enumerate(images):
        crowd = consensus.get(image.pk)
        model_label = int(np.argmax(probs[k]))
        if (
            crowd is None
            or crowd.confidence < DISAGREE_CROWD
            or probs[k][model_label] < DISAGREE_MODEL
            or codes[model_label] == crowd.label_class.code
        ):
            continue
        review_item_open(
            image=image,
            reason=ReviewItem.Reason.DISAGREEMENT,
            priority=float(probs[k][model_label]),
            details={
                "model": {
                    "label": codes[model_label],
                    "confidence": round(float(probs[k][model_label]), 4),
                    "posterior": {
                        c: round(float(p), 4) for c, p in zip(codes, probs[k], strict=True)
                    },
                    "version": f"v{model_version.version}",
                },
                "crowd": {
                    "label": crowd.label_class.code,
                    "confidence": round(crowd.confidence, 4),
                },
            },
        )
        opened += 1
    return opened


def model_training_due(*, dataset_id: int) -> bool:
    """Whether the consensus has grown enough since the last model to train a new one."""
    n_consensus = Consensus.objects.filter(
        image__dataset_id=dataset_id, image__gold_class__isnull=True
    ).count()
    last = ModelVersion.objects.filter(
        dataset_id=dataset_id, status=ModelVersion.Status.READY
    ).first()
    if ModelVersion.objects.filter(
        dataset_id=dataset_id, status=ModelVersion.Status.TRAINING
    ).exists():
        return False
    if last is None:
        return n_consensus >= MIN_TRAIN_IMAGES
    grown = n_consensus - last.n_train
    return grown >= RETRAIN_MIN_NEW or grown >= RETRAIN_GROWTH * max(1, last.n_train) and grown > 0
