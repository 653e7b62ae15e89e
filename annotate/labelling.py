"""Label submission: store a batch of class labels exactly once, whatever the client retries.

A client gives every label an idempotency key. ``Annotation`` has a unique constraint on
``(player, idempotency_key)``. A batch is stored with one ``INSERT ... ON CONFLICT DO NOTHING
RETURNING`` (two queries in all: the images' status, the insert, in a savepoint). A key stored
before (a retried batch, or a concurrent retry: the insert waits for it to commit) is skipped by
the insert, and only those labels are read back. Each label is stored once and every submission
gets the stored rows back. A key already used for a *different* image or class is a client
bug and is refused."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction

from annotate.models import Annotation, Image
from tessera import db
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
    # Refused before anything is written, so the caller's transaction stays usable.
    datasets = _check_access(labels, allowed_image_ids)
    # A savepoint inside the caller's transaction: a key reused for another label is refused
    # after the insert, and the batch's rows go with it.
    with transaction.atomic():
        return _store(player_id, labels, source, datasets)


_COLUMNS = (
    "image_id",
    "player_id",
    "label_class_id",
    "source",
    "idempotency_key",
    "response_ms",
    "is_counted",
)


def _store(
    player_id: int,
    labels: Sequence[LabelInput],
    source: str,
    datasets: dict[int, tuple[int, int]],
) -> list[StoredLabel]:
    """Store a checked batch (``datasets``: what ``_check_access`` returned) with one ``INSERT
    ... ON CONFLICT DO NOTHING RETURNING``. A key stored before (a retry, or a retry racing this
    one: the insert waits for it to commit) is skipped by the insert, and only those labels are
    then read back."""
    inserted = db.insert_rows(
        Annotation,
        _COLUMNS,
        [
            (
                label.image_id,
                player_id,
                label.label_class_id,
                source,
                label.idempotency_key,
                label.response_ms,
                label.counted,
            )
            for label in labels
        ],
        unless_taken=True,
        returning=("id", "idempotency_key"),
    )
    new = {key: pk for pk, key in inserted}
    missing = [label.idempotency_key for label in labels if label.idempotency_key not in new]
    taken = _stored_by_key(player_id, missing) if missing else {}
    result = []
    for label in labels:
        key = label.idempotency_key
        if key in new:
            result.append(
                StoredLabel(
                    key,
                    new[key],
                    label.image_id,
                    label.label_class_id,
                    label.response_ms,
                    label.counted,
                    created=True,
                )
            )
            continue
        row = taken[key]
        if (row.image_id, row.label_class_id) != (label.image_id, label.label_class_id):
            raise Conflict(
                "This idempotency key was already used for another label.", extra={"key": key}
            )
        result.append(
            StoredLabel(
                key,
                row.pk,
                row.image_id,
                row.label_class_id,  # type: ignore[arg-type]
                row.response_ms,
                row.is_counted,
                created=False,
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


_PUBLIC_ID = Image._meta.get_field("public_id")


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
    marks = ", ".join(["%s"] * len(image_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.id, i.dataset_id, d.consensus_every, i.public_id, i.status"  # noqa: S608
            " FROM annotate_image i JOIN annotate_dataset d ON d.id = i.dataset_id"
            f" WHERE i.id IN ({marks})",
            list(image_ids),
        )
        rows = cursor.fetchall()
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
            extra={"image": str(_PUBLIC_ID.to_python(public_id)), "status": status},
        )
    return datasets
