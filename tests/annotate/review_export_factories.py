"""Builders for the review and export tests: consented images, consensus rows, labels."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from annotate.models import Annotation, Consensus, Dataset, Image
from consent.models import Purpose
from tests.factories import ConsentFactory, DatasetFactory, ImageFactory


def dataset_with_classes(*codes: str, **kwargs) -> Dataset:
    return DatasetFactory(classes=list(codes) or ["a", "b"], **kwargs)


def consented_image(
    dataset: Dataset,
    *,
    research: str = "permit",
    consent_status: str = "active",
    expired: bool = False,
    **kwargs,
) -> Image:
    """An image whose donor decided `research` for research export."""
    now = timezone.now()
    consent = ConsentFactory(
        decisions={Purpose.ANNOTATION: "permit", Purpose.RESEARCH_EXPORT: research},
        status=consent_status,
        withdrawn_at=now if consent_status == "withdrawn" else None,
        period_start=now - timedelta(days=30),
        period_end=now - timedelta(days=1) if expired else None,
    )
    return ImageFactory(dataset=dataset, consent=consent, **kwargs)


def consensus_set(image: Image, posterior: dict[str, float], n_labels: int, n_players: int):
    """A consensus row with exactly these numbers (the label is the arg-max)."""
    code = max(posterior, key=posterior.get)
    return Consensus.objects.create(
        image=image,
        label_class=image.dataset.classes.get(code=code),
        posterior=posterior,
        confidence=posterior[code],
        n_labels=n_labels,
        n_players=n_players,
    )


def label(player, image: Image, code: str, response_ms: int = 2000) -> Annotation:
    return Annotation.objects.create(
        image=image,
        player=player,
        label_class=image.dataset.classes.get(code=code),
        source=Annotation.Source.MATCH_THREE,
        idempotency_key=uuid.uuid4().hex,
        response_ms=response_ms,
    )


def contour(player, image: Image, points: list[list[float]]) -> Annotation:
    return Annotation.objects.create(
        image=image,
        player=player,
        geometry={"type": "polygon", "points": points},
        source=Annotation.Source.CONTOUR_RACE,
        idempotency_key=uuid.uuid4().hex,
        response_ms=3000,
    )


def outlined_image(slug: str, *, raters: int = 3) -> Image:
    """An 8×8 image in play in a new outline dataset, with a near-square contour per rater."""
    from accounts.roles import Role
    from tests.factories import user_with_role

    dataset = dataset_with_classes("lesion", task=Dataset.Task.SEGMENTATION, slug=slug)
    image = consented_image(dataset, width=8, height=8, status=Image.Status.ACTIVE)
    for n in range(raters):
        contour(user_with_role(Role.VOLUNTEER), image, [[1, 1], [6, 1], [6, 6 + n % 2], [1, 6]])
    return image
