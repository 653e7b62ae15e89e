"""Reads for clinician review: the queue and everything the review page shows about one item."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.db.models import Case, F, FloatField, Q, QuerySet, Value, When
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from annotate.models import (
    Annotation,
    Consensus,
    ConsensusMask,
    GoldMask,
    Image,
    LabelClass,
    PlayerSkill,
    ReviewDecision,
    ReviewItem,
)
from annotate.review.access import access_can_adjudicate, access_can_review, access_require_review
from tessera.errors import NotPermitted

# Queue order: items already half-decided first (a colleague waits on them), then by reason
# (possible identifying text before a player's report before a model disagreement before plain
# uncertainty), then by the item's own priority in [0, 1] (e.g. 1 - consensus confidence).
STAGE_WEIGHT = {
    ReviewItem.Stage.ADJUDICATION: 20.0,
    ReviewItem.Stage.SECOND: 10.0,
    ReviewItem.Stage.FIRST: 0.0,
}
REASON_WEIGHT = {
    ReviewItem.Reason.QUARANTINE: 3.0,
    ReviewItem.Reason.REPORTED: 2.0,
    ReviewItem.Reason.DISAGREEMENT: 1.0,
    ReviewItem.Reason.UNCERTAIN: 0.0,
}


def _weight(field_name: str, weights: dict[str, float]) -> Case:
    return Case(
        *[When(**{field_name: key}, then=Value(w)) for key, w in weights.items()],
        default=Value(0.0),
        output_field=FloatField(),
    )


def review_rank_expression():  # type: ignore[no-untyped-def]
    """SQL expression of an item's queue rank (higher first); see STAGE_WEIGHT/REASON_WEIGHT."""
    clamped = Least(Greatest(F("priority"), Value(0.0)), Value(1.0))
    return _weight("stage", STAGE_WEIGHT) + _weight("reason", REASON_WEIGHT) + clamped


def unclaimed_q(*, user, now: datetime) -> Q:  # type: ignore[no-untyped-def]
    """Items nobody holds, whose claim expired, or that `user` holds already."""
    return Q(assigned_to__isnull=True) | Q(claim_expires_at__lte=now) | Q(assigned_to=user)


def review_queue(  # type: ignore[no-untyped-def]
    *, user, dataset_slug: str | None = None, reason: str | None = None
) -> QuerySet[ReviewItem]:
    """Open items `user` may decide, best first, annotated with `rank`.

    Adjudication items only reach adjudicators; nobody sees an item they already decided (a
    second opinion and an adjudication must come from someone else).
    """
    access_require_review(user)
    items = ReviewItem.objects.filter(status=ReviewItem.Status.OPEN).exclude(
        decisions__clinician=user
    )
    if not access_can_adjudicate(user):
        items = items.exclude(stage=ReviewItem.Stage.ADJUDICATION)
    if dataset_slug:
        items = items.filter(image__dataset__slug=dataset_slug)
    if reason:
        items = items.filter(reason=reason)
    return (
        items.select_related("image__dataset", "assigned_to")
        .annotate(rank=review_rank_expression())
        .order_by("-rank", "created_at", "id")
    )


def review_item_get_for_reviewer(*, user, item_id: int) -> ReviewItem:  # type: ignore[no-untyped-def]
    """An item `user` may look at: any item for reviewers (resolved ones too, read-only)."""
    if not access_can_review(user):
        raise NotPermitted("Only clinicians and admins review labels.")
    item = (
        ReviewItem.objects.select_related("image__dataset", "image__gold_class", "assigned_to")
        .filter(pk=item_id)
        .first()
    )
    if item is None or item.image.status == Image.Status.WITHDRAWN:
        raise NotPermitted("No such review item.")
    if item.stage == ReviewItem.Stage.ADJUDICATION and not access_can_adjudicate(user):
        raise NotPermitted("Only an adjudicator may open this item.")
    return item


@dataclass(frozen=True)
class Voter:
    """A player behind a vote, anonymous: an alias local to this image and their reliability."""

    alias: str
    accuracy: float | None
    gold_accuracy: float | None
    n_labels: int
    is_flagged: bool


@dataclass(frozen=True)
class Vote:
    label_class: LabelClass
    n: int
    share: float
    voters: tuple[Voter, ...]


@dataclass(frozen=True)
class Contour:
    alias: str
    points: str  # SVG points attribute "x,y x,y ..."
    sensitivity: float | None
    specificity: float | None


@dataclass(frozen=True)
class ReviewContext:
    """Everything the review page shows for one item."""

    item: ReviewItem
    image: Image
    classes: tuple[LabelClass, ...]
    votes: tuple[Vote, ...]
    n_votes: int
    consensus: Consensus | None
    consensus_mask: ConsensusMask | None
    gold_mask: GoldMask | None
    contours: tuple[Contour, ...]
    # The consensus outline(s) for editing: SVG points strings.
    consensus_outline: tuple[str, ...]
    model_opinion: dict | None
    reports: tuple[str, ...]
    decisions: tuple[ReviewDecision, ...]
    held_by_me: bool
    held_by_other: bool
    can_decide: bool
    other_open_reasons: tuple[str, ...] = field(default_factory=tuple)


def _svg_points(points) -> str:  # type: ignore[no-untyped-def]
    return " ".join(f"{float(x):g},{float(y):g}" for x, y in points)


def _aliases(image: Image) -> dict[int, str]:
    """Player id -> "Player N", numbered by first answer on this image. Never a name."""
    order = (
        Annotation.objects.filter(image=image, is_counted=True)
        .order_by("id")
        .values_list("player_id", flat=True)
    )
    aliases: dict[int, str] = {}
    for player_id in order:
        aliases.setdefault(player_id, f"Player {len(aliases) + 1}")
    return aliases


def model_opinion_for(item: ReviewItem) -> dict | None:
    """The model's opinion on the item's image, when one exists.

    Disagreement items carry it in `details["model"]` (`{"label": code, "confidence": p,
    "posterior": {code: p}, "version": str}`); the active-learning issue may extend this selector
    with a stored prediction. None hides the panel.
    """
    opinion = item.details.get("model") if isinstance(item.details, dict) else None
    if isinstance(opinion, dict) and opinion.get("label"):
        return opinion
    # Otherwise the latest stored prediction of the dataset's model (annotate.learning).
    from annotate.models import ImagePriority

    stored = (
        ImagePriority.objects.filter(image_id=item.image_id).select_related("model_version").first()
    )
    if stored is None or not stored.model_posterior:
        return None
    label, confidence = max(stored.model_posterior.items(), key=lambda kv: kv[1])
    version = f"v{stored.model_version.version}" if stored.model_version else ""
    return {
        "label": label,
        "confidence": confidence,
        "posterior": stored.model_posterior,
        "version": version,
    }


def consensus_outline_points(mask: np.ndarray, tolerance: float = 1.0) -> list[list[list[float]]]:
    """Editable outlines of a consensus mask: pixel-edge rings simplified (Douglas–Peucker).

    Parameters
    ----------
    mask : (H, W) bool
    tolerance : float
        Largest allowed deviation in pixels.

    Returns
    -------
    list of rings, each a list of [x, y]
    """
    from shapely.geometry import LinearRing

    from ml.raster import mask_to_polygons

    rings = []
    for ring in mask_to_polygons(mask):
        simple = LinearRing(ring).simplify(tolerance, preserve_topology=True)
        coords = [list(c) for c in simple.coords][:-1]
        rings.append(coords if len(coords) >= 3 else ring.tolist())
    return rings


def review_context(*, user, item: ReviewItem) -> ReviewContext:  # type: ignore[no-untyped-def]
    """The vote distribution, the reliability of the players behind each vote, the model's
    opinion, each player's outline and the consensus contour, reports and earlier decisions."""
    from annotate.consensus import contour_points

    image = item.image
    dataset = image.dataset
    classes = tuple(dataset.classes.order_by("order"))
    aliases = _aliases(image)
    skills = {
        s.player_id: s
        for s in PlayerSkill.objects.filter(dataset=dataset, player_id__in=list(aliases))
    }
    labels = list(
        Annotation.objects.filter(image=image, is_counted=True, label_class__isnull=False)
        .order_by("id")
        .values_list("player_id", "label_class_id")
    )
    votes = []
    for label_class in classes:
        voters = tuple(_voter(aliases[p], skills.get(p)) for p, c in labels if c == label_class.pk)
        votes.append(
            Vote(label_class, len(voters), len(voters) / len(labels) if labels else 0.0, voters)
        )
    consensus = Consensus.objects.filter(image=image).select_related("label_class").first()
    consensus_mask = ConsensusMask.objects.filter(image=image).first()
    gold_mask = GoldMask.objects.filter(image=image).first()
    quality = consensus_mask.rater_quality if consensus_mask else {}
    contours = tuple(
        Contour(
            aliases.get(p, "Player"),
            _svg_points(contour_points(g)),
            quality.get(str(p), {}).get("sensitivity"),
            quality.get(str(p), {}).get("specificity"),
        )
        for p, g in Annotation.objects.filter(image=image, is_counted=True, geometry__isnull=False)
        .order_by("id")
        .values_list("player_id", "geometry")
        if isinstance(g, dict) and g.get("points")
    )
    outline: tuple[str, ...] = ()
    if consensus_mask is not None:
        outline = tuple(
            _svg_points(r) for r in consensus_outline_points(_read_mask(consensus_mask))
        )
    decisions = tuple(item.decisions.select_related("label_class").order_by("id"))
    # A second opinion is blind: the second clinician does not see the first one's proposal.
    if item.stage == ReviewItem.Stage.SECOND and item.status == ReviewItem.Status.OPEN:
        decisions = ()
    now = timezone.now()
    held = item.assigned_to_id is not None and item.claim_expires_at > now
    already = item.decisions.filter(clinician=user).exists()
    return ReviewContext(
        item=item,
        image=image,
        classes=classes,
        votes=tuple(votes),
        n_votes=len(labels),
        consensus=consensus,
        consensus_mask=consensus_mask,
        gold_mask=gold_mask,
        contours=contours,
        consensus_outline=outline,
        model_opinion=model_opinion_for(item),
        reports=tuple(r.get("text", "") for r in item.details.get("reports", []) if r.get("text")),
        decisions=decisions,
        held_by_me=held and item.assigned_to_id == user.pk,
        held_by_other=held and item.assigned_to_id != user.pk,
        can_decide=item.status == ReviewItem.Status.OPEN and not already,
        other_open_reasons=tuple(
            ReviewItem.objects.filter(image=image, status=ReviewItem.Status.OPEN)
            .exclude(pk=item.pk)
            .values_list("reason", flat=True)
        ),
    )


def _voter(alias: str, skill: PlayerSkill | None) -> Voter:
    if skill is None:
        return Voter(alias, None, None, 0, False)
    return Voter(alias, skill.accuracy, skill.gold_accuracy, skill.n_labels, skill.is_flagged)


def _read_mask(record: ConsensusMask) -> np.ndarray:
    from PIL import Image as PILImage

    with record.mask.open("rb") as handle:
        return np.asarray(PILImage.open(handle)) > 127


def review_probability_rgba(*, record: ConsensusMask) -> np.ndarray:
    """The STAPLE probability map as a translucent overlay: (H, W, 4) uint8, orange with alpha
    proportional to P(foreground) (the outlines carry the same information without colour)."""
    from PIL import Image as PILImage

    with record.probability.open("rb") as handle:
        p = np.asarray(PILImage.open(handle)).astype(np.float64) / 65535.0
    rgba = np.zeros((*p.shape, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = 255, 140, 0
    rgba[..., 3] = np.round(p * 110).astype(np.uint8)
    return rgba
