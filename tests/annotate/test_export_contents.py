"""Exact contents of an export snapshot: rows, COCO, masks, manifest checksums, consent filter."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from django.utils import timezone
from PIL import Image as PILImage

from accounts.roles import Role
from annotate import consensus
from annotate.export import ExportFilters, export_build, export_request, images_exportable
from annotate.models import Dataset, Export, Image, ReviewItem
from tests.annotate.review_export_factories import (
    consensus_set,
    consented_image,
    contour,
    dataset_with_classes,
)
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def derm():
    """A classification dataset: 3 exportable labelled images, one low-confidence one, and five
    that must never leave (consent denied, withdrawn, expired; unusable; unlabelled)."""
    dataset = dataset_with_classes("benign", "malignant", slug="derm", name="Derm")
    crowd = consented_image(dataset)
    consensus_set(crowd, {"benign": 0.9, "malignant": 0.1}, 5, 5)
    gold = consented_image(dataset, gold_class=dataset.classes.get(code="malignant"))
    consensus_set(gold, {"benign": 0.3, "malignant": 0.7}, 4, 3)
    decided = consented_image(dataset, gold_class=dataset.classes.get(code="benign"))
    ReviewItem.objects.create(
        image=decided,
        reason="uncertain",
        status="resolved",
        resolved_at=timezone.now(),
        outcome={"action": "relabel", "label": "benign"},
    )
    weak = consented_image(dataset)
    consensus_set(weak, {"benign": 0.55, "malignant": 0.45}, 2, 2)
    excluded = [
        consented_image(dataset, research="deny"),
        consented_image(dataset, consent_status="withdrawn"),
        consented_image(dataset, expired=True),
        consented_image(dataset, status=Image.Status.UNUSABLE),
    ]
    for image in excluded:
        consensus_set(image, {"benign": 0.99, "malignant": 0.01}, 6, 6)
    consented_image(dataset)  # no labels yet
    return dataset, crowd, gold, decided, weak


def _build(dataset, fmt="all", **filters):
    export = export_request(
        user=None, dataset=dataset, filters=ExportFilters(**filters), fmt=fmt, queue=False
    )
    export = export_build(export_id=export.pk)
    assert export.status == Export.Status.READY, export.error
    with export.file.open("rb") as handle:
        data = handle.read()
    return export, zipfile.ZipFile(io.BytesIO(data)), data


def test_labels_csv_rows_are_exact(derm):
    dataset, crowd, gold, decided, weak = derm

    export, archive, _ = _build(dataset)

    rows = list(csv.reader(io.StringIO(archive.read("labels.csv").decode())))
    assert rows == [
        [
            "image",
            "file",
            "label",
            "confidence",
            "n_labels",
            "n_players",
            "posterior_benign",
            "posterior_malignant",
            "source",
        ],
        [str(crowd.public_id), f"images/{crowd.public_id}.png", "benign", "0.900000", "5", "5",
         "0.900000", "0.100000", "crowd"],
        [str(gold.public_id), f"images/{gold.public_id}.png", "malignant", "1.000000", "4", "3",
         "0.000000", "1.000000", "gold"],
        [str(decided.public_id), f"images/{decided.public_id}.png", "benign", "1.000000", "0",
         "0", "1.000000", "0.000000", "clinician"],
        [str(weak.public_id), f"images/{weak.public_id}.png", "benign", "0.550000", "2", "2",
         "0.550000", "0.450000", "crowd"],
    ]  # fmt: skip
    assert export.version == 1
    assert export.counts == {
        "images": 4,
        "labels": 11,
        "sources": {"crowd": 2, "clinician": 1, "gold": 1},
        "classes": {"benign": 3, "malignant": 1},
    }
    assert list(export.items.values_list("public_id", flat=True)) == [
        crowd.public_id,
        gold.public_id,
        decided.public_id,
        weak.public_id,
    ]


def test_images_are_the_stored_derivatives_and_the_manifest_checks_every_file(derm):
    dataset, crowd, *_ = derm

    export, archive, data = _build(dataset)

    manifest = json.loads(archive.read("manifest.json"))
    names = sorted(n for n in archive.namelist() if n != "manifest.json")
    assert sorted(manifest["files"]) == names
    for name in names:
        assert manifest["files"][name] == hashlib.sha256(archive.read(name)).hexdigest()
    with crowd.file.open("rb") as handle:
        assert archive.read(f"images/{crowd.public_id}.png") == handle.read()
    assert export.sha256 == hashlib.sha256(data).hexdigest()
    assert export.size == len(data)
    assert manifest["consent"]["purposes"] == ["research_export"]
    assert manifest["software"]["tessera"] == "0.1.0"
    assert manifest["export_version"] == 1
    assert manifest["counts"]["images"] == 4
    assert manifest["model"] is None
    assert {"labels.csv", "coco/classification.json", "datasheet.md"} <= set(names)


def test_manifest_cites_the_latest_consensus_run(derm):
    dataset, *_ = derm
    run = consensus.consensus_refit(dataset_id=dataset.pk)

    _, archive, _ = _build(dataset)

    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["consensus"]["method"] == "dawid-skene"
    assert manifest["consensus"]["run"] == run.pk
    assert manifest["consensus"]["parameters"] == run.parameters


def test_coco_classification_loads_with_pycocotools(derm, tmp_path):
    from pycocotools.coco import COCO

    dataset, crowd, gold, decided, weak = derm
    _, archive, _ = _build(dataset, fmt="coco")
    path = tmp_path / "classification.json"
    path.write_bytes(archive.read("coco/classification.json"))

    coco = COCO(str(path))

    assert "labels.csv" not in archive.namelist()
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["benign", "malignant"]
    assert len(coco.getImgIds()) == 4
    malignant = coco.getCatIds(catNms=["malignant"])
    images = coco.loadImgs(coco.getImgIds(catIds=malignant))
    assert [i["tessera_id"] for i in images] == [str(gold.public_id)]
    annotation = coco.loadAnns(coco.getAnnIds(imgIds=[images[0]["id"]]))[0]
    assert (annotation["score"], annotation["source"], annotation["n_labels"]) == (1.0, "gold", 4)


def test_datasheet_reports_balance_and_sources(derm):
    dataset, *_ = derm

    _, archive, _ = _build(dataset)

    sheet = archive.read("datasheet.md").decode()
    assert "| benign | 3 | 75.0% |" in sheet
    assert "| malignant | 1 | 25.0% |" in sheet
    assert "| crowd | 2 |" in sheet and "| clinician | 1 |" in sheet and "| gold | 1 |" in sheet
    assert "## Known limitations" in sheet


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"min_confidence": 0.6}, ["crowd", "gold", "decided"]),
        ({"min_labels": 3}, ["crowd", "gold"]),
        ({"classes": ("malignant",)}, ["gold"]),
        ({"gold_only": True}, ["gold", "decided"]),
    ],
)
def test_filters(derm, filters, expected):
    dataset, crowd, gold, decided, weak = derm
    names = {crowd.public_id: "crowd", gold.public_id: "gold", decided.public_id: "decided",
             weak.public_id: "weak"}  # fmt: skip

    export, _, _ = _build(dataset, **filters)

    assert [names[p] for p in export.items.values_list("public_id", flat=True)] == expected


def test_consent_filter_keeps_only_active_permitting_consents(derm):
    dataset, crowd, gold, decided, weak = derm

    ids = set(images_exportable(Image.objects.filter(dataset=dataset)).values_list("id", flat=True))

    # The unlabelled image passes the consent filter; the builder drops it for having no label.
    # The unusable one has no place in an export whatever its consent says.
    assert len(ids) == 5
    assert {crowd.pk, gold.pk, decided.pk, weak.pk} <= ids
    assert not Image.objects.filter(pk__in=ids, consent__status="withdrawn").exists()


def test_versions_count_up_per_dataset(derm):
    dataset, *_ = derm
    other = dataset_with_classes("x", "y")

    first, _, _ = _build(dataset)
    second, _, _ = _build(dataset)
    elsewhere, _, _ = _build(other)

    assert (first.version, second.version, elsewhere.version) == (1, 2, 1)
    assert elsewhere.counts["images"] == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_segmentation_export_has_masks_probabilities_and_exact_coco(tmp_path):
    from pycocotools.coco import COCO

    from ml.raster import polygons_to_mask

    dataset = dataset_with_classes("lesion", task=Dataset.Task.SEGMENTATION, slug="seg")
    image = consented_image(dataset, width=8, height=8, status=Image.Status.ACTIVE)
    players = [user_with_role(Role.VOLUNTEER) for _ in range(3)]
    for player, square in zip(players, [[1, 1, 6, 6], [1, 1, 6, 6], [2, 2, 7, 7]], strict=True):
        x0, y0, x1, y1 = square
        contour(player, image, [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    record = consensus.consensus_mask_update(image_id=image.pk)

    export, archive, _ = _build(dataset)

    expected = np.asarray(PILImage.open(record.mask.open("rb"))) > 127
    got = np.asarray(PILImage.open(io.BytesIO(archive.read(f"masks/{image.public_id}.png")))) > 127
    assert (got == expected).all()
    probability = PILImage.open(io.BytesIO(archive.read(f"probabilities/{image.public_id}.png")))
    assert probability.mode.startswith("I")
    path = tmp_path / "seg.json"
    path.write_bytes(archive.read("coco/segmentation.json"))
    coco = COCO(str(path))
    annotation = coco.loadAnns(coco.getAnnIds())[0]
    assert (coco.annToMask(annotation) == expected).all()
    assert (polygons_to_mask(
        [np.reshape(p, (-1, 2)) for p in annotation["polygons"]], 8, 8
    ) == expected).all()  # fmt: skip
    assert annotation["area"] == int(expected.sum())
    rows = list(csv.reader(io.StringIO(archive.read("labels.csv").decode())))
    assert rows[0] == [
        "image", "file", "mask", "probability", "confidence", "n_labels", "n_players", "source"
    ]  # fmt: skip
    assert rows[1][5:] == ["3", "3", "crowd"]


def test_segmentation_gold_masks_export_as_gold_or_clinician():
    from django.core.files.base import ContentFile

    from annotate.models import GoldMask

    dataset = dataset_with_classes("lesion", task=Dataset.Task.SEGMENTATION, slug="seg-gold")
    shipped, decided = consented_image(dataset), consented_image(dataset)
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:5, 3:7] = 255
    out = io.BytesIO()
    PILImage.fromarray(mask, mode="L").save(out, format="PNG")
    for image, source in ((shipped, "dataset"), (decided, "clinician")):
        gold = GoldMask(image=image, source=source, polygons=[[[3, 2], [7, 2], [7, 5], [3, 5]]])
        gold.mask.save("gold.png", ContentFile(out.getvalue()), save=False)
        gold.save()

    export, archive, _ = _build(dataset, gold_only=True)

    assert list(export.items.values_list("source", flat=True)) == ["gold", "clinician"]
    assert archive.read(f"masks/{shipped.public_id}.png") == out.getvalue()
    annotation = json.loads(archive.read("coco/segmentation.json"))["annotations"][0]
    assert (annotation["area"], annotation["bbox"]) == (12, [3.0, 2.0, 4.0, 3.0])
