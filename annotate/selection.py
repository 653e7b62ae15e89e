"""The next-images selector: which images a player gets next for one dataset.

Rules, in the order they apply:

1. Only images in play (``Image.Status.ACTIVE``) of the dataset, under a consent that is active,
   inside its validity period and permits annotation (``decisions["annotation"] == "permit"``).
2. Never an image this player was already served (``games.ServedImage``, unique per player and
   image) or has labelled (any ``Annotation`` of theirs), and never one of the dataset's reference
   images (their class is shown to every player, so they cannot be asked about).
3. Gold mixed in at the rate the caller passes (``games.engine.progression.gold_rate``): the number
   of gold images is drawn binomially, and when one kind runs out the other fills the gap.
4. Order: the highest active-learning priority (``annotate.ImagePriority``, written by the model's
   scoring task) first among unseen non-gold images; random where the dataset has no priorities.

Random without ``ORDER BY RANDOM()``: public ids are random UUIDs, so the images from a random
pivot upwards in ``public_id`` order are a uniform random sample that an index range scan finds
without sorting the dataset (bench/selection_next.py: p95 with 100,000 images).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotate.models import Annotation, Dataset, Image, ImagePriority
from consent.models import Consent, Purpose

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selected:
    """One selected image: its database id, its public id and its gold class id (or None)."""

    image_id: int
    public_id: uuid.UUID
    gold_class_id: int | None


def permitted_consents(*, consent_ids: Collection[int] | None = None) -> QuerySet[Consent]:
    """Consents that permit annotation now: active, inside their period, annotation permitted."""
    now = timezone.now()
    qs = Consent.objects.filter(
        status=Consent.Status.ACTIVE,
        period_start__lte=now,
        **{f"decisions__{Purpose.ANNOTATION}": "permit"},
    ).filter(Q(period_end__isnull=True) | Q(period_end__gt=now))
    if consent_ids is not None:
        qs = qs.filter(pk__in=list(consent_ids))
    return qs


def unseen_images(*, dataset: Dataset, player_id: int) -> QuerySet[Image]:
    """Images of ``dataset`` in play that this player was never served and never labelled.

    Consent is *not* checked here (see :func:`eligible_images`); the selector checks it on the
    few candidates it reads, which keeps every planner on the image index range (a consent join
    or semi-join lets PostgreSQL and SQLite start from the consent table when they misjudge how
    selective the JSON condition is: seconds instead of milliseconds at 100,000 images).
    """
    from games.models import ServedImage  # the served record lives with the games

    return (
        Image.objects.filter(dataset=dataset, status=Image.Status.ACTIVE)
        .exclude(Exists(ServedImage.objects.filter(player_id=player_id, image=OuterRef("pk"))))
        .exclude(Exists(Annotation.objects.filter(player_id=player_id, image=OuterRef("pk"))))
    )


def eligible_images(*, dataset: Dataset, player_id: int) -> QuerySet[Image]:
    """Images of ``dataset`` this player may be served now (rules 1 and 2, without references)."""
    return unseen_images(dataset=dataset, player_id=player_id).filter(
        consent_id__in=permitted_consents().values("pk")
    )


# How deep into a dataset's priority ranking one selection may walk before falling back to random.
PRIORITY_WALK_LIMIT = 2000
# The largest window one walk step reads (windows double while most candidates are seen).
MAX_WINDOW = 1000

_FIELDS = ("pk", "public_id", "gold_class_id", "served_as", "labelled_as", "permitted_by")


def _candidates(*, dataset: Dataset, player_id: int, exclude_image_ids: Collection[int]):
    """Images of ``dataset`` in play, each with what decides whether this player may get it.

    The player's history (a served record, a label) and the image's consent come back as
    columns, each a correlated scalar subquery that reads one index entry per row read
    (``(player, image)`` on both history tables, the consent's primary key). Not anti-joins in
    the WHERE clause: a planner that underestimates a player's history (a new or fast-growing
    player whose id is not in the column statistics) runs those as a nested loop over the whole
    history for every candidate (PostgreSQL: 10 ms at 3,000 served images, 0.5 s seen). Not
    ``EXISTS`` columns either: PostgreSQL turns those into hashed subplans that read the whole
    history and every consent on each query. Scalar subqueries cannot be hashed, so the cost is
    bounded by the rows read, whatever the history or the number of donors.
    """
    from games.models import ServedImage  # the served record lives with the games

    def first_pk(qs: QuerySet) -> Subquery:
        return Subquery(qs.order_by().values("pk")[:1])

    qs = Image.objects.filter(dataset=dataset, status=Image.Status.ACTIVE)
    if exclude_image_ids:
        qs = qs.exclude(pk__in=list(exclude_image_ids))
    return qs.annotate(
        served_as=first_pk(ServedImage.objects.filter(player_id=player_id, image=OuterRef("pk"))),
        labelled_as=first_pk(Annotation.objects.filter(player_id=player_id, image=OuterRef("pk"))),
        permitted_by=first_pk(permitted_consents().filter(pk=OuterRef("consent_id"))),
    )


def _eligible(rows: list[tuple]) -> list[Selected]:
    """The rows this player may get (never served, never labelled, consent permits), in order."""
    return [
        Selected(pk, public_id, gold)
        for pk, public_id, gold, served_as, labelled_as, permitted_by in rows
        if permitted_by is not None and served_as is None and labelled_as is None
    ]


def _walk(qs: QuerySet[Image], count: int, low: uuid.UUID | None, high: uuid.UUID | None):
    """Up to ``count`` eligible images with ``low <= public_id < high``, in public-id order."""
    chosen: list[Selected] = []
    inclusive = True
    window = count + 4
    while len(chosen) < count:
        page = qs
        if low is not None:
            page = page.filter(public_id__gte=low) if inclusive else page.filter(public_id__gt=low)
        if high is not None:
            page = page.filter(public_id__lt=high)
        rows = list(page.order_by("public_id").values_list(*_FIELDS)[:window])
        chosen += _eligible(rows)[: count - len(chosen)]
        if len(rows) < window:
            break
        low, inclusive = rows[-1][1], False
        window = min(2 * window, MAX_WINDOW)
    return chosen


def _random_slice(qs: QuerySet[Image], count: int, rng: np.random.Generator) -> list[Selected]:
    if count <= 0:
        return []
    pivot = uuid.UUID(bytes=rng.bytes(16))
    chosen = _walk(qs, count, pivot, None)
    if len(chosen) < count:  # wrap around below the pivot
        chosen += _walk(qs, count - len(chosen), None, pivot)
    return chosen


def _prioritised(
    qs: QuerySet[Image], dataset_id: int, count: int, rng: np.random.Generator
) -> list[Selected]:
    """The ``count`` eligible images with the highest active-learning priority, then random ones.

    Walks the dataset's priorities from the top in windows (one index range scan each) and keeps
    the eligible, consented ones; a bounded walk, so a player who has seen the whole top of the
    ranking gets the rest at random instead of a scan of the dataset.
    """
    if count <= 0:
        return []
    ranked = (
        ImagePriority.objects.filter(dataset_id=dataset_id)
        .order_by("-priority", "image_id")
        .values_list("image_id", flat=True)
    )
    window, chosen, offset = max(4 * count, 100), [], 0
    while len(chosen) < count and offset < PRIORITY_WALK_LIMIT:
        ids = list(ranked[offset : offset + window])
        if not ids:
            break
        rows = {row[0]: row for row in qs.filter(pk__in=ids).values_list(*_FIELDS)}
        chosen += _eligible([rows[i] for i in ids if i in rows])[: count - len(chosen)]
        offset += window
    if len(chosen) < count:
        rest = qs.exclude(pk__in=[s.image_id for s in chosen]) if chosen else qs
        chosen += _random_slice(rest, count - len(chosen), rng)
    return chosen


def next_images_select(
    *,
    player_id: int,
    dataset: Dataset,
    count: int,
    gold_rate: float,
    rng: np.random.Generator,
    exclude_image_ids: Collection[int] = (),
) -> list[Selected]:
    """Up to ``count`` images for this player, gold mixed in at ``gold_rate``.

    Parameters
    ----------
    player_id : int
        The player.
    dataset : Dataset
        The dataset being played.
    count : int
        How many images are wanted; fewer come back when the player has seen nearly everything.
    gold_rate : float
        Expected share of gold images, in [0, 1] (``progression.gold_rate``).
    rng : numpy.random.Generator
        Randomness for the gold count and the random order.
    exclude_image_ids : collection of int
        Images never to return (the dataset's reference images).

    Returns
    -------
    list of Selected
        Gold and non-gold images shuffled together. The caller records them as served
        (``games.ServedImage``) in the same transaction.
    """
    if count <= 0:
        return []
    if not 0.0 <= gold_rate <= 1.0:
        raise ValueError("gold_rate must be in [0, 1]")
    base = _candidates(dataset=dataset, player_id=player_id, exclude_image_ids=exclude_image_ids)
    # Through an expression, so that no planner walks the gold_class index (every gold image of
    # the table, then a sort) instead of the (dataset, status, public_id) range.
    base = base.alias(gold_key=Coalesce("gold_class_id", Value(0)))
    gold_qs = base.filter(gold_key__gt=0)
    plain_qs = base.filter(gold_key=0)
    n_gold = int(rng.binomial(count, gold_rate))
    gold = _random_slice(gold_qs, n_gold, rng)
    plain = _prioritised(plain_qs, dataset.pk, count - len(gold), rng)
    if len(gold) + len(plain) < count and len(gold) == n_gold:
        # Non-gold ran out: fill with more gold rather than leave the board short.
        gold += _random_slice(
            gold_qs.exclude(pk__in=[s.image_id for s in gold]), count - len(gold) - len(plain), rng
        )
    chosen = gold + plain
    order = rng.permutation(len(chosen))
    return [chosen[i] for i in order]
