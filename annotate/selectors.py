"""Reads for datasets and images, with the object-level access rules every entry point uses."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db.models import Count, Q, QuerySet

from accounts.access import access_has_role
from accounts.roles import Role
from annotate.models import Annotation, Dataset, Image
from tessera.errors import NotPermitted

# Roles that may look at images that are not in play (quarantined, retired, unusable).
_CURATOR_ROLES = (Role.CLINICIAN, Role.COORDINATOR, Role.ADMIN)
_DATASET_VIEWER_ROLES = (Role.CLINICIAN, Role.RESEARCHER, Role.COORDINATOR, Role.ADMIN)


@dataclass(frozen=True)
class DatasetCard:
    dataset: Dataset
    n_active: int
    n_gold: int
    n_labelled_by_me: int


def dataset_cards_for_player(*, user) -> list[DatasetCard]:  # type: ignore[no-untyped-def]
    """Active datasets with images in play, with how many of them this player has labelled."""
    datasets = (
        Dataset.objects.filter(is_active=True)
        .annotate(
            n_active=Count("images", filter=Q(images__status=Image.Status.ACTIVE), distinct=True),
            n_gold=Count(
                "images",
                filter=Q(images__status=Image.Status.ACTIVE, images__gold_class__isnull=False),
                distinct=True,
            ),
        )
        .filter(n_active__gt=0)
        .prefetch_related("classes")
    )
    mine = dict(
        Annotation.objects.filter(player=user)
        .values_list("image__dataset_id")
        .annotate(n=Count("image_id", distinct=True))
    )
    return [DatasetCard(d, d.n_active, d.n_gold, mine.get(d.pk, 0)) for d in datasets]


def dataset_list_for_viewer(*, user) -> QuerySet[Dataset]:  # type: ignore[no-untyped-def]
    if not access_has_role(user, *_DATASET_VIEWER_ROLES):
        raise NotPermitted("Only clinicians, researchers, coordinators and admins see datasets.")
    return Dataset.objects.annotate(
        n_images=Count("images", distinct=True),
        n_active=Count("images", filter=Q(images__status=Image.Status.ACTIVE), distinct=True),
        n_gold=Count(
            "images",
            filter=Q(images__gold_class__isnull=False) | Q(images__gold_mask__isnull=False),
            distinct=True,
        ),
    ).prefetch_related("classes")


def dataset_get_for_viewer(*, user, slug: str) -> Dataset:  # type: ignore[no-untyped-def]
    dataset = dataset_list_for_viewer(user=user).filter(slug=slug).first()
    if dataset is None:
        raise NotPermitted("No such dataset.")
    return dataset


def dataset_class_balance(*, dataset: Dataset) -> list[tuple[str, int]]:
    """(class name, number of gold images) per class, in class order."""
    counts = dict(
        Image.objects.filter(dataset=dataset, gold_class__isnull=False)
        .values_list("gold_class_id")
        .annotate(n=Count("id"))
    )
    return [(c.name, counts.get(c.pk, 0)) for c in dataset.classes.all()]


def image_get_for_viewing(*, user, public_id: UUID) -> Image:  # type: ignore[no-untyped-def]
    """The image if `user` may see its pixels, else `NotPermitted` (never says whether it exists).

    Players see images in play; curators see any image that still has pixels; a donor sees
    their own images. Withdrawn images have no pixels left and are never served.
    """
    image = Image.objects.select_related("donor").filter(public_id=public_id).first()
    if image is None or image.status == Image.Status.WITHDRAWN:
        raise NotPermitted("No such image.")
    if image_viewable(user=user, status=image.status):
        return image
    if image.donor.user_id is not None and image.donor.user_id == user.pk:
        return image
    raise NotPermitted("No such image.")


def image_viewable(*, user, status: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether `user` may see the pixels of an image in `status` (the donor aside).

    Players and researchers see images in play and settled ones (researchers export those);
    curators also see quarantined and unusable ones, which may show burned-in text.
    """
    if status == Image.Status.WITHDRAWN:
        return False
    if status == Image.Status.ACTIVE and access_has_role(user, Role.VOLUNTEER):
        return True
    if status in (Image.Status.ACTIVE, Image.Status.RETIRED) and access_has_role(
        user, *_DATASET_VIEWER_ROLES
    ):
        return True
    return access_has_role(user, *_CURATOR_ROLES)


@dataclass(frozen=True)
class ConsensusSummary:
    last_run: object  # ConsensusRun | None
    n_with_consensus: int
    mean_confidence: float | None
    n_retired: int
    n_open_reviews: int
    n_players: int
    n_flagged_players: int


def dataset_consensus_summary(*, dataset: Dataset) -> ConsensusSummary:
    """Where a dataset's consensus stands: the last run, coverage, retirement, flags."""
    from django.db.models import Avg

    from annotate.models import Consensus, ConsensusMask, ConsensusRun, PlayerSkill, ReviewItem

    if dataset.task == Dataset.Task.SEGMENTATION:
        # STAPLE per image: the "confidence" is the mean agreement (Dice) of the outlines.
        agg = ConsensusMask.objects.filter(image__dataset=dataset).aggregate(
            n=Count("id"), mean=Avg("mean_agreement")
        )
        players = (
            Annotation.objects.filter(image__dataset=dataset, geometry__isnull=False)
            .values("player")
            .distinct()
            .count()
        )
        skills = {"n": players, "flagged": 0}
        last_run = None
    else:
        agg = Consensus.objects.filter(image__dataset=dataset).aggregate(
            n=Count("id"), mean=Avg("confidence")
        )
        skills = PlayerSkill.objects.filter(dataset=dataset).aggregate(
            n=Count("id"), flagged=Count("id", filter=Q(is_flagged=True))
        )
        last_run = ConsensusRun.objects.filter(dataset=dataset).first()
    return ConsensusSummary(
        last_run=last_run,
        n_with_consensus=agg["n"],
        mean_confidence=agg["mean"],
        n_retired=Image.objects.filter(dataset=dataset, status=Image.Status.RETIRED).count(),
        n_open_reviews=ReviewItem.objects.filter(
            image__dataset=dataset, status=ReviewItem.Status.OPEN
        ).count(),
        n_players=skills["n"],
        n_flagged_players=skills["flagged"],
    )


@dataclass(frozen=True)
class LearningCurve:
    """Gold accuracy of each ready model version against the crowd labels behind it."""

    points: list[tuple[int, float, int]]  # (labels, accuracy, version)
    svg_points: str  # "x,y x,y" in a 400x160 box
    max_labels: int


def dataset_models_for_viewer(*, user, dataset: Dataset):  # type: ignore[no-untyped-def]
    """The dataset's model versions (newest first) and its learning curve, for researchers and admins."""
    from annotate.models import ModelVersion

    if not access_has_role(user, Role.RESEARCHER, Role.ADMIN):
        raise NotPermitted("Only researchers and admins see the models.")
    versions = list(ModelVersion.objects.filter(dataset=dataset).order_by("-version"))
    ready = [
        (v.n_labels, v.metrics.get("gold_accuracy"), v.version)
        for v in reversed(versions)
        if v.status == ModelVersion.Status.READY and v.metrics.get("gold_accuracy") is not None
    ]
    top = max([p[0] for p in ready], default=0) or 1
    svg = " ".join(f"{20 + 370 * n / top:.1f},{150 - 140 * acc:.1f}" for n, acc, _ in ready)
    return versions, LearningCurve(points=ready, svg_points=svg, max_labels=top)
