"""Demo data for the contour race: the ISIC lesion-outline subset, half of it with expert gold.

``isic_seg_subset`` holds 150 dermoscopy images with an expert lesion mask each (CC BY-NC 4.0).
Every second image (in file-name order) keeps its expert mask as ``GoldMask`` (source ``dataset``):
races on those are scored against the expert; the other half have no gold and are scored against
the leave-one-out STAPLE consensus of the players' contours, as new images would be.

**Seeded demo races (synthetic, for the demo only).** So that a lone player finds ghosts in a fresh
demo, three demo accounts (``seed-racer-1..3``, no usable password) get one recorded "race" per
gold image: an outline made from the expert mask (its outer boundary, simplified, then scaled,
shifted and jittered with a seeded generator) with made-up timings. They are *not* earlier
players' work, and they are only put on gold images, so they never become the consensus that a
real player is scored against (gold images are scored against gold). Real races add real ghosts.
Idempotent: a second run adds nothing.
"""

from __future__ import annotations

import csv
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_grant_role
from annotate.consensus import contour_geometry
from annotate.models import Annotation, Dataset, GoldMask, Image
from annotate.services import dataset_ensure, image_create

logger = logging.getLogger(__name__)

FOLDER = "isic_seg_subset"
SLUG = "skin-lesion-outlines"
GOLD_EVERY = 2  # half of the images carry the expert mask as gold
SEED_RACERS = 3
SEED = 20261122


@dataclass(frozen=True)
class SegItem:
    image: Path
    mask: Path
    group: str  # lesion id: one demo donor per lesion


def items(data_dir: Path) -> list[SegItem]:
    root = data_dir / "images" / FOLDER
    rows = list(csv.DictReader((root / "labels.csv").open(newline="")))
    out = [
        SegItem(
            root / "images" / f"{r['image_id']}.jpg",
            root / "masks" / f"{r['image_id']}_segmentation.png",
            r["lesion_id"],
        )
        for r in rows
    ]
    return sorted(out, key=lambda i: i.image.name)


def _mask(path: Path) -> np.ndarray:
    from PIL import Image as PILImage

    with PILImage.open(path) as pil:
        return np.asarray(pil.convert("L")) > 127


def _png(mask: np.ndarray) -> bytes:
    import io

    from PIL import Image as PILImage

    out = io.BytesIO()
    PILImage.fromarray(mask.astype(np.uint8) * 255, mode="L").save(out, format="PNG")
    return out.getvalue()


def load_segmentation_demo(*, data_dir: Path, limit: int) -> int:
    """Load up to ``limit`` image+mask pairs, gold for every second one, and the seeded races.

    Returns the number of images added.
    """
    from ml.raster import mask_to_polygons
    from tessera.demo import clean_raster, demo_consent_form, demo_donor_consent

    root = data_dir / "images" / FOLDER
    dataset = dataset_ensure(
        slug=SLUG,
        name="Skin lesion outlines (ISIC)",
        classes=[],
        task=Dataset.Task.SEGMENTATION,
        target_structure="Skin lesion",
        description="Dermoscopy images: outline the pigmented lesion. Half have an expert outline.",
        attribution=(root / "LICENSE_ATTRIBUTION.txt").read_text(),
        licence="CC BY-NC 4.0",
        modality="XC",
    )
    loaded = set(Image.objects.filter(dataset=dataset).values_list("source_ref", flat=True))
    form = demo_consent_form()
    added = 0
    for index, item in enumerate(items(data_dir)[:limit]):
        ref = f"{FOLDER}:{item.image.name}"
        if ref in loaded:
            continue
        with transaction.atomic():
            image = image_create(
                dataset=dataset,
                consent=demo_donor_consent(form, item.group),
                clean=clean_raster(item.image),
                source_ref=ref,
            )
            if index % GOLD_EVERY == 0:
                mask = _mask(item.mask)
                gold = GoldMask(
                    image=image,
                    polygons=[ring.tolist() for ring in mask_to_polygons(mask)],
                    source=GoldMask.Source.DATASET,
                )
                gold.mask.save("gold.png", ContentFile(_png(mask)), save=False)
                gold.save()
        added += 1
    seed_demo_races(dataset=dataset)
    return added


def _seed_racers() -> list[User]:
    racers = []
    for k in range(1, SEED_RACERS + 1):
        user, made = User.objects.get_or_create(
            username=f"seed-racer-{k}", defaults={"display_name": f"Demo racer {k}"}
        )
        if made:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            user_grant_role(user=user, role=Role.VOLUNTEER)
        racers.append(user)
    return racers


def _noisy_outline(
    mask: np.ndarray, rng: np.random.Generator, width: int, height: int
) -> list[list[float]]:
    """The mask's largest outer boundary, simplified and perturbed like a hurried human outline."""
    from shapely.geometry import Polygon

    from ml.raster import mask_to_polygons

    rings = [Polygon(r) for r in mask_to_polygons(mask)]
    outer = max(rings, key=lambda p: p.area)
    simple = outer.simplify(1.5, preserve_topology=True).exterior.coords[:-1]
    pts = np.asarray(simple, dtype=float)
    centre = pts.mean(axis=0)
    scale = rng.normal(1.0, 0.06)
    shift = rng.normal(0.0, 3.0, size=2)
    pts = centre + (pts - centre) * scale + shift + rng.normal(0.0, 1.2, size=pts.shape)
    pts[:, 0] = pts[:, 0].clip(0, width)
    pts[:, 1] = pts[:, 1].clip(0, height)
    return pts.round(2).tolist()


def seed_demo_races(*, dataset: Dataset) -> int:
    """One synthetic race per seed racer on each gold image without one (see the module docstring).

    Returns the number of contours added.
    """
    from games.contour.models import RaceEntry, RaceRoom
    from games.contour.selectors import reference_image_ids
    from games.engine import contour_race as engine
    from games.engine.contours import ContourRejected, dice, validate_contour
    from ml.raster import polygon_to_mask

    racers = _seed_racers()
    refs = set(reference_image_ids(dataset_id=dataset.pk))
    golds = (
        GoldMask.objects.filter(image__dataset=dataset)
        .exclude(image_id__in=refs)
        .select_related("image")
        .order_by("image_id")
    )
    added = 0
    for gold in golds:
        image = gold.image
        done = set(
            RaceEntry.objects.filter(image=image, player__in=racers).values_list(
                "player_id", flat=True
            )
        )
        todo = [r for r in racers if r.pk not in done]
        if not todo:
            continue
        with gold.mask.open("rb") as f:
            from PIL import Image as PILImage

            with PILImage.open(f) as pil:
                truth = np.asarray(pil.convert("L")) > 127
        rng = np.random.default_rng([SEED, image.pk])
        with transaction.atomic():
            state = engine.new_room(f"demo-{image.pk}")
            room = RaceRoom.objects.create(
                dataset=dataset,
                status=RaceRoom.Status.CLOSED,
                state={**state.to_dict(), "phase": engine.CLOSED},
                names={str(r.pk): r.public_name() for r in todo},
                round_meta={"image_pk": image.pk, "demo": True},
                seed=secrets.randbits(62),
            )
            for racer in todo:
                try:
                    clean = validate_contour(
                        _noisy_outline(truth, rng, image.width, image.height),
                        width=image.width,
                        height=image.height,
                        closed=True,
                    )
                except ContourRejected:
                    continue
                started = int(rng.integers(1_000, 4_000))
                elapsed = started + int(rng.integers(8_000, 30_000))
                annotation = Annotation.objects.create(
                    image=image,
                    player=racer,
                    geometry=contour_geometry(clean.points, clean.repairs, demo=True),
                    source=Annotation.Source.CONTOUR_RACE,
                    idempotency_key=f"demo-race:{image.pk}",
                    response_ms=elapsed,
                )
                mask = polygon_to_mask(np.asarray(clean.points), image.height, image.width)
                RaceEntry.objects.create(
                    room=room,
                    round_no=1,
                    player=racer,
                    image=image,
                    annotation=annotation,
                    started_ms=started,
                    elapsed_ms=elapsed,
                    dice=dice(mask, truth),
                    reference=RaceEntry.Reference.GOLD,
                )
                added += 1
    logger.info("seeded %s demo race contours on %s", added, dataset.slug)
    return added
