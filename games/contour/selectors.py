"""Reads for the contour race: playable datasets, images for a round, ghosts, player skill."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet

from annotate.models import Annotation, Dataset, GoldMask, Image
from annotate.selection import permitted_consents
from games.contour.models import RaceEntry, RaceRoom, RaceSeat
from games.engine.contour_race import GhostReplay
from tessera.errors import NotPermitted

# A newcomer's skill (mean Dice of their last races) before they have raced.
DEFAULT_SKILL = 0.5
SKILL_WINDOW = 20
# Gold images shown as the reference example of the target structure, never raced.
REFERENCE_COUNT = 3


def race_datasets() -> QuerySet[Dataset]:
    """Active segmentation datasets that have a target structure to outline."""
    return Dataset.objects.filter(is_active=True, task=Dataset.Task.SEGMENTATION).exclude(
        target_structure=""
    )


def race_dataset_get(*, slug: str) -> Dataset:
    """The race dataset ``slug``, or ``NotPermitted`` (never says whether another kind exists)."""
    dataset = race_datasets().filter(slug=slug).first()
    if dataset is None:
        raise NotPermitted("No such race.")
    return dataset


def player_skill(*, player_id: int, dataset_id: int) -> float:
    """Mean Dice of the player's last races on the dataset (``DEFAULT_SKILL`` before any)."""
    recent = (
        RaceEntry.objects.filter(player_id=player_id, image__dataset_id=dataset_id)
        .exclude(dice=None)
        .order_by("-id")
        .values_list("dice", flat=True)[:SKILL_WINDOW]
    )
    values = list(recent)
    return float(np.mean(values)) if values else DEFAULT_SKILL


def reference_image_ids(*, dataset_id: int) -> list[int]:
    """The dataset's reference examples: its first gold-mask images in play."""
    return list(
        GoldMask.objects.filter(image__dataset_id=dataset_id, image__status=Image.Status.ACTIVE)
        .order_by("image_id")
        .values_list("image_id", flat=True)[:REFERENCE_COUNT]
    )


def round_candidates(
    *, dataset: Dataset, player_ids: list[int], references: list[int] | None = None
) -> QuerySet[Image]:
    """Images every player in ``player_ids`` may outline now.

    In play (``ACTIVE``: not retired, withdrawn or quarantined), under a consent that permits
    annotation now (``annotate.selection.permitted_consents``), outlined by none of these players
    before, below the dataset's label limit, and not one of its reference examples
    (``references``: :func:`reference_image_ids`, read here when the caller has not).
    """
    if references is None:
        references = reference_image_ids(dataset_id=dataset.pk)
    counted = Count("annotations", filter=Q(annotations__is_counted=True))
    return (
        Image.objects.filter(dataset=dataset, status=Image.Status.ACTIVE)
        .filter(consent_id__in=permitted_consents().values("pk"))
        .exclude(pk__in=references)
        .exclude(Exists(Annotation.objects.filter(player_id__in=player_ids, image=OuterRef("pk"))))
        .alias(n_labels=counted)
        .filter(n_labels__lt=dataset.max_labels)
    )


def with_ghosts(qs: QuerySet[Image], *, player_ids: list[int]) -> QuerySet[Image]:
    """The images of ``qs`` that someone else has raced (a counted contour to replay)."""
    return qs.filter(
        Exists(
            RaceEntry.objects.filter(image=OuterRef("pk"), annotation__is_counted=True).exclude(
                player_id__in=player_ids
            )
        )
    )


# What a round needs of its image; the pick reads only these.
_PICK_FIELDS = ("id", "public_id", "width", "height")


def pick(qs: QuerySet[Image], rng: np.random.Generator) -> Image | None:
    """One image of ``qs`` uniformly at random, drawn with the room's generator from one read of
    the candidates in id order (the sets are small: images below their label limit that none of
    the room's players has outlined). The image comes back with ``_PICK_FIELDS`` loaded (others
    load on access).

    One query: no count and offset (an offset past the end of a set that shrank between the two
    reads once failed a player's move) and no second read of the drawn image (building that
    query again was 14 % of a race move's Python time in the 200-player benchmark).
    """
    rows = list(qs.order_by("pk").values_list(*_PICK_FIELDS))
    if not rows:
        return None
    return Image.from_db(qs.db, list(_PICK_FIELDS), rows[int(rng.integers(len(rows)))])


@dataclass(frozen=True)
class GhostSource:
    replay: GhostReplay
    name: str


def ghosts_for(
    *, image: Image, player_ids: list[int], wanted: int, rng: np.random.Generator
) -> list[GhostSource]:
    """Up to ``wanted`` replays of earlier players' contours on ``image``, one per player.

    Only counted contours (a withdrawn donor's image or a flagged player's contour never comes
    back as a ghost). The engine sees ghost ids only; the source annotation stays server-side.
    """
    rows = list(
        RaceEntry.objects.filter(image=image, annotation__is_counted=True)
        .exclude(player_id__in=player_ids)
        .order_by("player_id", "-id")
        .values_list(
            "player_id", "annotation_id", "annotation__geometry", "started_ms", "elapsed_ms", "dice"
        )
    )
    latest: dict[int, tuple] = {}
    for row in rows:
        latest.setdefault(row[0], row)
    chosen = list(latest.values())
    order = rng.permutation(len(chosen))[:wanted]
    out = []
    for k, i in enumerate(sorted(int(j) for j in order)):
        _, annotation_id, geometry, started, elapsed, dice = chosen[i]
        ghost_id = f"ghost-{k + 1}"
        out.append(
            GhostSource(
                replay=GhostReplay(
                    ghost_id=ghost_id,
                    source_id=str(annotation_id),
                    contour=tuple((float(x), float(y)) for x, y in geometry["points"]),
                    start_offset_ms=int(started),
                    submit_offset_ms=int(elapsed),
                    skill=float(dice) if dice is not None else DEFAULT_SKILL,
                ),
                name=f"Ghost {chr(ord('A') + k)} (replay)",
            )
        )
    return out


def room_for_player(*, token: uuid.UUID, player_id: int) -> RaceRoom:
    """The room ``token`` if the player has a seat in it, else ``NotPermitted``."""
    room = RaceRoom.objects.filter(token=token).select_related("dataset").first()
    if room is None or not RaceSeat.objects.filter(room=room, player_id=player_id).exists():
        raise NotPermitted("No such room.")
    return room


def open_room_of(*, player_id: int) -> RaceRoom | None:
    """The player's most recent open room that they have not left (to offer a rejoin)."""
    from games.engine import contour_race as engine

    rooms = RaceRoom.objects.filter(
        status=RaceRoom.Status.OPEN, seats__player_id=player_id
    ).order_by("-id")[:5]
    for room in rooms:
        me = engine.RoomState.from_dict(room.state).player(str(player_id))
        if me is not None and not me.left:
            return room
    return None


@dataclass(frozen=True)
class RaceStats:
    races: int
    mean_dice: float | None
    best_score: int | None


def race_stats(*, player_id: int) -> RaceStats:
    """A player's race history at a glance."""
    agg = RaceEntry.objects.filter(player_id=player_id).aggregate(n=Count("id"), dice=Avg("dice"))
    best = (
        RaceEntry.objects.filter(player_id=player_id)
        .exclude(score=None)
        .order_by("-score")
        .values_list("score", flat=True)
        .first()
    )
    return RaceStats(races=agg["n"], mean_dice=agg["dice"], best_score=best)


def ghosts_available(*, dataset: Dataset, player_id: int) -> bool:
    """Whether a lone player could race ghosts now: some image they may outline has been raced
    by someone else (whose counted contour can be replayed)."""
    candidates = round_candidates(dataset=dataset, player_ids=[player_id])
    return with_ghosts(candidates, player_ids=[player_id]).exists()
