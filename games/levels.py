"""The match-three levels of a dataset and its reference images (pure level rules + one query)."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.cache import cache

from annotate.models import Dataset
from annotate.selection import eligible_images
from games.engine.match3 import Goals, LevelConfig, UnlockRule, tutorial_level

REFERENCES_PER_CLASS = 3
TUTORIAL = "tutorial"
_CACHE_SECONDS = 300


def dataset_levels(
    *, class_names: Sequence[str], reference_images: Sequence[Sequence[str]]
) -> tuple[LevelConfig, ...]:
    """The levels of a dataset, easiest first: a tutorial, then levels opened by measured skill.

    ``reference_images`` holds, per class, the public ids of its reference examples (shown in the
    tutorial and after a wrong gold answer).
    """
    refs = tuple(tuple(r) for r in reference_images)
    names = tuple(class_names)
    return (
        tutorial_level(TUTORIAL, names, refs),
        LevelConfig(
            level_id="level-1",
            class_names=names,
            rows=7,
            cols=7,
            moves=30,
            goals=Goals(clear_gems=21),
            reference_images=refs,
            unlock=UnlockRule(requires=(TUTORIAL,)),
        ),
        LevelConfig(
            level_id="level-2",
            class_names=names,
            rows=7,
            cols=7,
            moves=30,
            goals=Goals(clear_gems=30, score=600),
            reference_images=refs,
            unlock=UnlockRule(min_gold_answers=10, min_accuracy=0.5, requires=("level-1",)),
        ),
        LevelConfig(
            level_id="level-3",
            class_names=names,
            rows=8,
            cols=8,
            moves=30,
            lives=2,
            goals=Goals(clear_gems=45, score=1200),
            reference_images=refs,
            unlock=UnlockRule(min_gold_answers=30, min_accuracy=0.7, requires=("level-2",)),
        ),
    )


LEVEL_TITLES = {
    TUTORIAL: "Tutorial",
    "level-1": "Level 1",
    "level-2": "Level 2",
    "level-3": "Level 3",
}


def _references(dataset: Dataset) -> tuple[tuple[tuple[str, ...], ...], tuple[int, ...]]:
    # Kept on the instance too: a level start asks three times, and each ask of the shared
    # cache is a round trip and an unpickling.
    memo = dataset.__dict__.get("_tessera_references")
    if memo is not None:
        return memo
    key = f"games:refs:{dataset.pk}"
    cached = cache.get(key)
    if cached is not None:
        dataset._tessera_references = cached  # type: ignore[attr-defined]
        return cached
    base = eligible_images(dataset=dataset, player_id=0)
    rows = [
        list(
            base.filter(gold_class=cls)
            .order_by("pk")
            .values_list("pk", "public_id")[:REFERENCES_PER_CLASS]
        )
        for cls in dataset.classes.all()
    ]
    result = (
        tuple(tuple(str(public_id) for _, public_id in per_class) for per_class in rows),
        tuple(pk for per_class in rows for pk, _ in per_class),
    )
    cache.set(key, result, _CACHE_SECONDS)
    dataset._tessera_references = result  # type: ignore[attr-defined]
    return result


def reference_images(*, dataset: Dataset) -> tuple[tuple[str, ...], ...]:
    """Per class (in class order), public ids of up to three gold images in play to learn from.

    The lowest-id gold images of each class under a consent that permits annotation; they are
    shown to every player with their class, so the selector never asks about them. Cached for
    five minutes per dataset.
    """
    return _references(dataset)[0]


def reference_image_pks(*, dataset: Dataset) -> tuple[int, ...]:
    """Database ids of the reference images (the selector excludes them from play)."""
    return _references(dataset)[1]
