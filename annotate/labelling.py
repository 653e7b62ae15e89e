"""Label submission: store a batch of class labels exactly once, whatever the client retries.

A client gives every label an idempotency key. ``Annotation`` has a unique constraint on
``(player, idempotency_key)``. A batch is first inserted as if all its keys were new, with one
``INSERT ... RETURNING id`` in a savepoint (two queries in all: the images' status, the insert).
When any key was stored before (a retried batch, or a concurrent retry that committed first),
the unique constraint refuses that insert; the savepoint is rolled back and the batch is stored
again by reading the keys already there and inserting the rest with ``INSERT ... ON CONFLICT DO
NOTHING``. Either way each label is stored once and every submission gets the stored rows back.
A key already used for a *different* image or class is a client bug and is refused."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from annotate.models import Annotation, Image
from tessera.errors import ApplicationError, Conflict, NotPermitted

logger = logging.getLogger(__name__)

MAX_BATCH = 200
MAX_KEY_LENGTH = 64


@dataclass(frozen=True)
class LabelInput:
    """One label to store. ``counted=False`` stores it flagged (e.g. answered too fast)."""

    idempotency_key: str
    image_id: int
    label_class_id: int
    response_ms: int
    counted: bool = True


@dataclass(frozen=True)
class StoredLabel:
    """A label as stored; ``created`` is False when an earlier submission had stored it."""

    idempotency_key: str
    annotation_id: int
    image_id: int
    label_class_id: int
    response_ms: int | None
    is_counted: bool
    created: bool


def _check_inputs(labels: Sequence[LabelInput]) -> None:
    if len(labels) > MAX_BATCH:
        raise ApplicationError(f"At most {MAX_BATCH} labels per batch.")
    keys = [label.idempotency_key for label in labels]
    if len(set(keys)) != len(keys):
        raise ApplicationError("Each label in a batch needs its own idempotency key.")
    for label in labels:
        if not 0 < len(label.idempotency_key) <= MAX_KEY_LENGTH:
            raise ApplicationError(f"Idempotency keys have 1 to {MAX_KEY_LENGTH} characters.")
        if label.response_ms < 0:
            raise ApplicationError("Response times are never negative.")


def labels_submit(
    *,
    player_id: int,
    labels: Sequence[LabelInput],
    source: str,
    allowed_image_ids: frozenset[int],
) -> list[StoredLabel]:
    """Store a batch of labels once each and return every label of the batch as stored.

    Parameters
    ----------
    player_id : int
        The player giving the labels.
    labels : sequence of LabelInput
        The batch (at most ``MAX_BATCH``), each with its own idempotency key.
    source : str
        ``Annotation.Source`` of the game.
    allowed_image_ids : frozenset of int
        Images this player was served in this session (the caller's access rule).

    Returns
    -------
    list of StoredLabel
        In the batch's order; labels stored by an earlier submission come back with
        ``created=False`` and are not checked again (the first submission was).

    Raises
    ------
    NotPermitted
        A label for an image that was not served to this player in this session.
    Conflict
        A label for an image that is no longer in play (withdrawn by its donor, retired...), or an
        idempotency key reused for a different label. Nothing of the batch is stored.
    """
    _check_inputs(labels)
    try:
        with transaction.atomic():
            return _store(player_id, labels, source, allowed_image_ids)
    except IntegrityError:
        # A key of this batch is stored already (a retry, or two retries racing): read what is
        # there, store the rest with ON CONFLICT DO NOTHING and read the batch back.
        with transaction.atomic():
            return _store(player_id, labels, source, allowed_image_ids, retried=True)


def _store(
    player_id: int,
    labels: Sequence[LabelInput],
    source: str,
    allowed_image_ids: frozenset[int],
    *,
    retried: bool = False,
) -> list[StoredLabel]:
    """One attempt at storing a batch (inside a transaction or savepoint).

    The common case (every key new) costs two queries: the images' status and dataset, and one
    ``INSERT ... RETURNING id``, which raises IntegrityError when a key is taken. ``retried``
    is the fallback after that: the keys already stored are read first, the rest inserted with
    ``ON CONFLICT DO NOTHING`` (a racing retry may still commit some of them meanwhile) and
    the whole batch read back.
    """
    keys = [label.idempotency_key for label in labels]
    stored = _stored_by_key(player_id, keys) if retried else {}
    before = set(stored)
    new = [label for label in labels if label.idempotency_key not in before]
    datasets = _check_access(new, allowed_image_ids)
    rows = [
        Annotation(
            image_id=label.image_id,
            player_id=player_id,
            label_class_id=label.label_class_id,
            source=source,
            idempotency_key=label.idempotency_key,
            response_ms=label.response_ms,
            is_counted=label.counted,
        )
        for label in new
    ]
    if retried:
        Annotation.objects.bulk_create(rows, ignore_conflicts=True)
        stored = _stored_by_key(player_id, keys)
    elif rows:
        # No ignore_conflicts: the insert returns the new ids, and a key stored before raises
        # IntegrityError (stored again above with retried=True).
        for row in Annotation.objects.bulk_create(rows):
            stored[row.idempotency_key] = row
    result = []
    for label in labels:
        row = stored[label.idempotency_key]
        if (row.image_id, row.label_class_id) != (label.image_id, label.label_class_id):
            raise Conflict(
                "This idempotency key was already used for another label.",
                extra={"key": label.idempotency_key},
            )
        result.append(
            StoredLabel(
                idempotency_key=label.idempotency_key,
                annotation_id=row.pk,
                image_id=row.image_id,
                label_class_id=row.label_class_id,  # type: ignore[arg-type]
                response_ms=row.response_ms,
                is_counted=row.is_counted,
                created=label.idempotency_key not in before,
            )
        )
    _count_for_consensus(result, datasets)
    return result


def _stored_by_key(player_id: int, keys: Sequence[str]) -> dict[str, Annotation]:
    return {
        a.idempotency_key: a
        for a in Annotation.objects.filter(player_id=player_id, idempotency_key__in=keys)
    }


def _count_for_consensus(
    result: Sequence[StoredLabel], datasets: dict[int, tuple[int, int]]
) -> None:
    """Tell consensus about the new counted labels, per dataset, once they are committed.

    After commit, so that the counter's row lock never serialises concurrent submissions.
    """
    from annotate.consensus import consensus_labels_added

    new_images = [r.image_id for r in result if r.created and r.is_counted]
    if not new_images:
        return
    per_dataset = Counter(datasets[image_id] for image_id in new_images)
    for (dataset_id, every), n in per_dataset.items():
        transaction.on_commit(
            lambda dataset_id=dataset_id, n=n, every=every: consensus_labels_added(
                dataset_id=dataset_id, n=n, every=every
            )
        )


def _check_access(
    labels: Sequence[LabelInput], allowed_image_ids: frozenset[int]
) -> dict[int, tuple[int, int]]:
    """Refuse the batch unless every image is allowed and in play.

    Returns image id -> (dataset id, the dataset's ``consensus_every``).
    """
    if not labels:
        return {}
    image_ids = {label.image_id for label in labels}
    if not image_ids <= allowed_image_ids:
        raise NotPermitted("You can only label images you were given in this game.")
    rows = Image.objects.filter(pk__in=image_ids).values_list(
        "pk", "dataset_id", "dataset__consensus_every", "public_id", "status"
    )
    datasets = {}
    for pk, dataset_id, every, public_id, status in rows:
        datasets[pk] = (dataset_id, every)
        if status == Image.Status.ACTIVE:
            continue
        reason = (
            "was withdrawn by its donor"
            if status == Image.Status.WITHDRAWN
            else "is no longer in play"
        )
        raise Conflict(
            f"This image {reason}; its label cannot be accepted.",
            extra={"image": str(public_id), "status": status},
        )
    return datasets
