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

import functools
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
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


def permitted_consent_sql(alias: str = "c") -> tuple[str, list[Any]]:
    """:func:`permitted_consents` as a condition on the consent table aliased ``alias``, with its
    parameters (now), for the hot paths that write their SQL once (the selector, a race start)."""
    if connection.vendor == "postgresql":
        permit, key = f"{alias}.decisions ->> %s = %s", Purpose.ANNOTATION
    else:
        permit, key = f"json_extract({alias}.decisions, %s) = %s", f'$."{Purpose.ANNOTATION}"'
    now = Consent._meta.get_field("period_start").get_db_prep_value(timezone.now(), connection)
    sql = (
        f"{alias}.status = %s AND {alias}.period_start <= %s AND {permit}"
        f" AND ({alias}.period_end IS NULL OR {alias}.period_end > %s)"
    )
    return sql, [Consent.Status.ACTIVE, now, key, "permit", now]


@functools.cache
def _candidate_select(vendor: str) -> str:
    """The candidates' SELECT and FROM, with the player's history and the consent as columns.

    Each of the three columns is a correlated scalar subquery that reads one index entry per row
    read (``(player, image)`` on both history tables, the consent's primary key). Not anti-joins
    in the WHERE clause: a planner that underestimates a player's history (a new or fast-growing
    player whose id is not in the column statistics) runs those as a nested loop over the whole
    history for every candidate (PostgreSQL: 10 ms at 3,000 served images, 0.5 s seen). Not
    ``EXISTS`` columns either: PostgreSQL turns those into hashed subplans that read the whole
    history and every consent on each query. Scalar subqueries cannot be hashed, so the cost is
    bounded by the rows read, whatever the history or the number of donors.

    Written as SQL once per process (not built by the ORM per window): building and compiling
    the three subqueries was half of a selection's Python time (bench/selection_next.py).
    """
    from games.models import ServedImage  # the served record lives with the games

    q = connection.ops.quote_name
    image, served, label, consent = (
        q(model._meta.db_table) for model in (Image, ServedImage, Annotation, Consent)
    )
    permitted, _ = permitted_consent_sql("c")
    # Only table names (from the models) are formatted in; every value is a parameter.
    return (
        f"SELECT i.id, i.public_id, i.gold_class_id,"  # noqa: S608
        f" (SELECT s.id FROM {served} s WHERE s.player_id = %s AND s.image_id = i.id LIMIT 1),"
        f" (SELECT a.id FROM {label} a WHERE a.player_id = %s AND a.image_id = i.id LIMIT 1),"
        f" (SELECT c.id FROM {consent} c WHERE c.id = i.consent_id AND {permitted} LIMIT 1)"
        f" FROM {image} i WHERE i.dataset_id = %s AND i.status = %s"
    )


class _Candidates:
    """Images of one dataset in play, gold or not, each with what decides whether this player may
    get it (see :func:`_candidate_select`); reads a window of them in public-id order, or a given
    set of them. One instance per selection: its SQL and parameters are put together once."""

    def __init__(
        self, *, dataset_id: int, player_id: int, gold: bool, exclude_image_ids: Collection[int]
    ) -> None:
        _, permitted_params = permitted_consent_sql()
        self.sql = _candidate_select(connection.vendor) + (
            # Through an expression, so that no planner walks the gold_class index (every gold
            # image of the table, then a sort) instead of the (dataset, status, public_id) range.
            " AND COALESCE(i.gold_class_id, 0) > 0"
            if gold
            else " AND COALESCE(i.gold_class_id, 0) = 0"
        )
        self.params: list[Any] = [
            player_id,
            player_id,
            *permitted_params,
            dataset_id,
            Image.Status.ACTIVE,
        ]
        self._uuid = Image._meta.get_field("public_id")
        self.exclude = list(exclude_image_ids)

    def _read(
        self,
        where: str,
        params: list[Any],
        exclude: Collection[int],
        tail: str = "",
        limit: int | None = None,
    ) -> list[tuple]:
        ids = [*self.exclude, *exclude]
        if ids:
            where += f" AND i.id NOT IN ({', '.join(['%s'] * len(ids))})"
            params = [*params, *ids]
        if limit is not None:
            params = [*params, limit]
        with connection.cursor() as cursor:
            cursor.execute(self.sql + where + tail, [*self.params, *params])
            rows = cursor.fetchall()
        return [
            (pk, public_id if isinstance(public_id, uuid.UUID) else uuid.UUID(public_id), *rest)
            for pk, public_id, *rest in rows
        ]

    def window(
        self,
        low: uuid.UUID | None,
        inclusive: bool,
        high: uuid.UUID | None,
        limit: int,
        exclude: Collection[int] = (),
    ) -> list[tuple]:
        """Up to ``limit`` candidates with ``low <= public_id < high`` (``>`` when not
        ``inclusive``), in public-id order."""
        where, params = "", []
        if low is not None:
            where += " AND i.public_id >= %s" if inclusive else " AND i.public_id > %s"
            params.append(self._uuid.get_db_prep_value(low, connection))
        if high is not None:
            where += " AND i.public_id < %s"
            params.append(self._uuid.get_db_prep_value(high, connection))
        return self._read(where, params, exclude, " ORDER BY i.public_id LIMIT %s", limit)

    def among(self, image_ids: list[int]) -> list[tuple]:
        """The candidates among ``image_ids``, in no particular order."""
        where = f" AND i.id IN ({', '.join(['%s'] * len(image_ids))})"
        return self._read(where, list(image_ids), ())


def _eligible(rows: list[tuple]) -> list[Selected]:
    """The rows this player may get (never served, never labelled, consent permits), in order."""
    return [
        Selected(pk, public_id, gold)
        for pk, public_id, gold, served_as, labelled_as, permitted_by in rows
        if permitted_by is not None and served_as is None and labelled_as is None
    ]


def _walk(
    candidates: _Candidates,
    count: int,
    low: uuid.UUID | None,
    high: uuid.UUID | None,
    exclude: Collection[int],
) -> list[Selected]:
    """Up to ``count`` eligible images with ``low <= public_id < high``, in public-id order."""
    chosen: list[Selected] = []
    inclusive = True
    window = count + 4
    while len(chosen) < count:
        rows = candidates.window(low, inclusive, high, window, exclude)
        chosen += _eligible(rows)[: count - len(chosen)]
        if len(rows) < window:
            break
        low, inclusive = rows[-1][1], False
        window = min(2 * window, MAX_WINDOW)
    return chosen


def _random_slice(
    candidates: _Candidates, count: int, rng: np.random.Generator, exclude: Collection[int] = ()
) -> list[Selected]:
    if count <= 0:
        return []
    pivot = uuid.UUID(bytes=rng.bytes(16))
    chosen = _walk(candidates, count, pivot, None, exclude)
    if len(chosen) < count:  # wrap around below the pivot
        chosen += _walk(candidates, count - len(chosen), None, pivot, exclude)
    return chosen


_RANKED_SQL = (
    f"SELECT image_id FROM {ImagePriority._meta.db_table} WHERE dataset_id = %s"  # noqa: S608
    " ORDER BY priority DESC, image_id LIMIT %s OFFSET %s"
)


def _ranked(dataset_id: int, offset: int, window: int) -> list[int]:
    """One window of the dataset's images by falling priority (SQL written once)."""
    with connection.cursor() as cursor:
        cursor.execute(_RANKED_SQL, [dataset_id, window, offset])
        return [image_id for (image_id,) in cursor.fetchall()]


def _prioritised(
    candidates: _Candidates, dataset_id: int, count: int, rng: np.random.Generator
) -> list[Selected]:
    """The ``count`` eligible images with the highest active-learning priority, then random ones.

    Walks the dataset's priorities from the top in windows (one index range scan each) and keeps
    the eligible, consented ones; a bounded walk, so a player who has seen the whole top of the
    ranking gets the rest at random instead of a scan of the dataset.
    """
    if count <= 0:
        return []
    window, chosen, offset = max(4 * count, 100), [], 0
    while len(chosen) < count and offset < PRIORITY_WALK_LIMIT:
        ids = _ranked(dataset_id, offset, window)
        if not ids:
            break
        rows = {row[0]: row for row in candidates.among(ids)}
        chosen += _eligible([rows[i] for i in ids if i in rows])[: count - len(chosen)]
        offset += window
    if len(chosen) < count:
        chosen += _random_slice(
            candidates, count - len(chosen), rng, exclude=[s.image_id for s in chosen]
        )
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

    def candidates(gold: bool) -> _Candidates:
        return _Candidates(
            dataset_id=dataset.pk,
            player_id=player_id,
            gold=gold,
            exclude_image_ids=exclude_image_ids,
        )

    gold_candidates = candidates(True)
    n_gold = int(rng.binomial(count, gold_rate))
    gold = _random_slice(gold_candidates, n_gold, rng)
    plain = _prioritised(candidates(False), dataset.pk, count - len(gold), rng)
    if len(gold) + len(plain) < count and len(gold) == n_gold:
        # Non-gold ran out: fill with more gold rather than leave the board short.
        gold += _random_slice(
            gold_candidates,
            count - len(gold) - len(plain),
            rng,
            exclude=[s.image_id for s in gold],
        )
    chosen = gold + plain
    order = rng.permutation(len(chosen))
    return [chosen[i] for i in order]
