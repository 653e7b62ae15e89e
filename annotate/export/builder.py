"""The one export builder: writes a snapshot archive from export rows.

Used by the Celery task behind the web page and the API, and by `manage.py export_dataset`.
Archive layout (all paths relative to the zip root):

- `images/<public id>.<ext>`: the stored de-identified derivatives, byte for byte;
- `labels.csv` (formats csv, all): one row per image;
- `coco/classification.json` or `coco/segmentation.json` (formats coco, all);
- `masks/<public id>.png` (segmentation: the exported mask, 0/255) and
  `probabilities/<public id>.png` (16-bit STAPLE probability × 65535) when there is one;
- `datasheet.md`: class balance, label-source mix, known limitations;
- `manifest.json`: SHA-256 of every other file, software version, consensus method and
  parameters, model version, consent purposes relied on, counts.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import platform
import tomllib
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image as PILImage

from annotate.export.coco import flat_polygons, mask_bbox, rle_encode
from annotate.export.selection import ExportFilters, ExportRow, Source
from annotate.models import ConsensusRun, Dataset
from consent.models import Purpose

FORMATS = ("csv", "coco", "all")
CONSENT_PURPOSES = (Purpose.RESEARCH_EXPORT.value,)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildResult:
    counts: dict
    files: dict[str, str]  # path -> sha256


def software_version() -> str:
    """Tessera's version from pyproject.toml."""
    with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def _suffix(name: str) -> str:
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name.rsplit("/", 1)[-1] else ""


class _Zip:
    """A zip whose entries carry a fixed timestamp, recording each file's checksum."""

    def __init__(self, target, when: datetime) -> None:  # type: ignore[no-untyped-def]
        self.zip = zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED)
        self.when = when.timetuple()[:6]
        self.files: dict[str, str] = {}

    def write(self, path: str, data: bytes, *, compress: bool = True) -> None:
        info = zipfile.ZipInfo(path, date_time=self.when)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        self.zip.writestr(info, data)
        self.files[path] = hashlib.sha256(data).hexdigest()

    def close(self) -> None:
        self.zip.close()


def _read(field) -> bytes:  # type: ignore[no-untyped-def]
    with field.open("rb") as handle:
        return handle.read()


def _mask_array(data: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(data))) > 127


def image_path(row: ExportRow) -> str:
    return f"images/{row.image.public_id}{_suffix(row.image.file.name)}"


def labels_csv(rows: list[ExportRow], *, codes: list[str], segmentation: bool) -> bytes:
    """labels.csv: image, file, label, confidence, n_labels, n_players, posterior_<code>..., source
    (segmentation: mask and probability paths instead of label and posteriors)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if segmentation:
        writer.writerow(
            [
                "image",
                "file",
                "mask",
                "probability",
                "confidence",
                "n_labels",
                "n_players",
                "source",
            ]
        )
    else:
        writer.writerow(
            ["image", "file", "label", "confidence", "n_labels", "n_players"]
            + [f"posterior_{c}" for c in codes]
            + ["source"]
        )
    for row in rows:
        head = [str(row.image.public_id), image_path(row)]
        if segmentation:
            probability = (
                f"probabilities/{row.image.public_id}.png" if _has_probability(row) else ""
            )
            tail = [f"masks/{row.image.public_id}.png", probability]
            writer.writerow(
                head + tail + [f"{row.confidence:.6f}", row.n_labels, row.n_players, row.source]
            )
        else:
            writer.writerow(
                head
                + [row.label, f"{row.confidence:.6f}", row.n_labels, row.n_players]
                + [f"{row.posterior.get(c, 0.0):.6f}" for c in codes]
                + [row.source]
            )
    return out.getvalue().encode()


def _has_probability(row: ExportRow) -> bool:
    mask = getattr(row.image, "consensus_mask", None)
    return bool(mask is not None and mask.probability)


def _coco_base(dataset: Dataset, rows: list[ExportRow], version: int, when: datetime) -> dict:
    return {
        "info": {
            "description": f"{dataset.name} (Tessera consensus export)",
            "version": str(version),
            "year": when.year,
            "date_created": when.isoformat(),
            "contributor": "Tessera",
            "url": "",
        },
        "licenses": [{"id": 1, "name": dataset.licence or "see datasheet.md", "url": ""}],
        "images": [
            {
                "id": n,
                "file_name": image_path(row),
                "width": row.image.width,
                "height": row.image.height,
                "license": 1,
                "tessera_id": str(row.image.public_id),
            }
            for n, row in enumerate(rows, start=1)
        ],
    }


def coco_classification(
    dataset: Dataset, rows: list[ExportRow], codes: list[str], version: int, when: datetime
) -> dict:
    """COCO document with one image-level annotation per image (category, score, posterior)."""
    doc = _coco_base(dataset, rows, version, when)
    category = {c: k for k, c in enumerate(codes, start=1)}
    names = dict(dataset.classes.values_list("code", "name"))
    doc["categories"] = [
        {"id": category[c], "name": c, "supercategory": dataset.slug, "display_name": names[c]}
        for c in codes
    ]
    doc["annotations"] = [
        {
            "id": n,
            "image_id": n,
            "category_id": category[row.label],
            "score": round(row.confidence, 6),
            "confidence": round(row.confidence, 6),
            "posterior": {c: round(row.posterior.get(c, 0.0), 6) for c in codes},
            "n_labels": row.n_labels,
            "n_players": row.n_players,
            "source": row.source,
            "iscrowd": 0,
        }
        for n, row in enumerate(rows, start=1)
    ]
    return doc


def coco_segmentation_annotation(n: int, row: ExportRow, mask: np.ndarray) -> dict:
    """One COCO instance: `segmentation` is the exact compressed RLE of the mask; `polygons`
    holds its pixel-edge outlines from `ml.raster.mask_to_polygons` (outer rings clockwise,
    holes counter-clockwise, on screen)."""
    from ml.raster import mask_to_polygons

    return {
        "id": n,
        "image_id": n,
        "category_id": 1,
        "segmentation": rle_encode(mask),
        "polygons": flat_polygons(mask_to_polygons(mask)),
        "area": int(mask.sum()),
        "bbox": mask_bbox(mask),
        "iscrowd": 0,
        "score": round(row.confidence, 6),
        "confidence": round(row.confidence, 6),
        "n_labels": row.n_labels,
        "n_players": row.n_players,
        "source": row.source,
    }


def datasheet(
    *,
    dataset: Dataset,
    rows: list[ExportRow],
    codes: list[str],
    filters: ExportFilters,
    version: int,
    when: datetime,
    run: ConsensusRun | None,
) -> str:
    """A short datasheet (Gebru et al.) in markdown: composition, provenance, limitations."""
    segmentation = dataset.task == Dataset.Task.SEGMENTATION
    sources = Counter(r.source for r in rows)
    lines = [
        f"# Datasheet: {dataset.name}, export v{version}",
        "",
        f"Created {when:%Y-%m-%d %H:%M} UTC by Tessera {software_version()}.",
        "",
        "## Composition",
        "",
        f"- Task: {dataset.get_task_display()}"
        + (f" ({dataset.target_structure})" if dataset.target_structure else ""),
        f"- Images: {len(rows)}",
        f"- Filters: {json.dumps(filters.as_json(), sort_keys=True)}",
        "",
    ]
    if not segmentation:
        balance = Counter(r.label for r in rows)
        lines += ["### Class balance", "", "| class | images | share |", "|---|---:|---:|"]
        for code in codes:
            share = balance[code] / len(rows) if rows else 0.0
            lines.append(f"| {code} | {balance[code]} | {share:.1%} |")
        lines.append("")
    lines += ["### Label sources", "", "| source | images |", "|---|---:|"]
    for source in (Source.CROWD, Source.CLINICIAN, Source.GOLD):
        lines.append(f"| {source} | {sources[source]} |")
    confidences = np.array([r.confidence for r in rows if r.source == Source.CROWD])
    lines += [""]
    if len(confidences):
        lines.append(
            f"Crowd rows: confidence median {np.median(confidences):.3f}, "
            f"minimum {confidences.min():.3f}; labels per image median "
            f"{np.median([r.n_labels for r in rows if r.source == Source.CROWD]):.0f}."
        )
        lines.append("")
    method = (
        f"{run.get_method_display()} ({run.kind} run #{run.pk}, {run.finished_at:%Y-%m-%d %H:%M} UTC)"
        if run
        else "no consensus run yet"
    )
    lines += [
        "## Provenance",
        "",
        "- Labels: volunteers in Tessera's games; `crowd` rows are the consensus of their labels"
        + (" (STAPLE over their contours)" if segmentation else f", {method}"),
        "- `clinician` rows were decided by a clinician in Tessera's review; `gold` rows carry the"
        " source dataset's expert label.",
        f"- Source licence: {dataset.licence or 'not stated'} (citation below).",
        "- Consent: every image's donor consent was active and permitted research export when "
        "this snapshot was built. Donors may withdraw later; Tessera then marks this export and a "
        "new snapshot leaves their images out.",
        "",
        "## Known limitations",
        "",
        "- Crowd labels come from non-experts; the confidence is the consensus model's posterior,"
        " which is only as well calibrated as the model of each player's errors.",
        "- Images are de-identified web derivatives (DICOM windowed to 8 bits, metadata removed),"
        " not the original acquisitions; quantitative intensity analysis is not possible.",
        "- Class balance reflects the donated images and the filters above, not any clinical"
        " population.",
        "- Images a clinician marked unusable, quarantined images and withdrawn images are left out.",
        "",
    ]
    if dataset.attribution.strip():
        lines += [
            "## Source dataset: citation and licence",
            "",
            "As given by the source's publisher; any counts or file layouts it mentions describe"
            " the source collection, not this export.",
            "",
            *(f"> {line}".rstrip() for line in dataset.attribution.strip().splitlines()),
            "",
        ]
    return "\n".join(lines)


def build_archive(
    target,  # type: ignore[no-untyped-def]
    *,
    dataset: Dataset,
    rows: list[ExportRow],
    filters: ExportFilters,
    fmt: str,
    version: int,
    when: datetime,
    progress: Progress | None = None,
) -> BuildResult:
    """Write the snapshot archive of `rows` to `target` (a path or a binary file object).

    `progress(done, total)` is called as images are written. The zip's entries carry `when` as
    their timestamp, so the same rows give the same bytes.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    segmentation = dataset.task == Dataset.Task.SEGMENTATION
    codes = list(dataset.classes.order_by("order").values_list("code", flat=True))
    run = ConsensusRun.objects.filter(dataset=dataset).order_by("-id").first()
    archive = _Zip(target, when)
    total = len(rows)
    annotations = []
    for n, row in enumerate(rows, start=1):
        # Images are PNG/WebP already: storing them again compressed gains nothing.
        archive.write(image_path(row), _read(row.image.file), compress=False)
        if segmentation:
            annotations.append(_write_masks(archive, n, row))
        if progress and (n % 25 == 0 or n == total):
            progress(n, total)
    if fmt in ("csv", "all"):
        archive.write("labels.csv", labels_csv(rows, codes=codes, segmentation=segmentation))
    if fmt in ("coco", "all"):
        if segmentation:
            doc = _coco_base(dataset, rows, version, when)
            doc["categories"] = [
                {
                    "id": 1,
                    "name": dataset.target_structure or "structure",
                    "supercategory": dataset.slug,
                }
            ]
            doc["annotations"] = annotations
            name = "coco/segmentation.json"
        else:
            doc = coco_classification(dataset, rows, codes, version, when)
            name = "coco/classification.json"
        archive.write(name, json.dumps(doc, indent=1).encode())
    archive.write(
        "datasheet.md",
        datasheet(
            dataset=dataset,
            rows=rows,
            codes=codes,
            filters=filters,
            version=version,
            when=when,
            run=run,
        ).encode(),
    )
    counts = _counts(rows, codes, segmentation)
    manifest = {
        "dataset": {"slug": dataset.slug, "name": dataset.name, "task": dataset.task},
        "export_version": version,
        "created_at": when.isoformat(),
        "format": fmt,
        "filters": filters.as_json(),
        "software": {"tessera": software_version(), "python": platform.python_version()},
        "consensus": _consensus(dataset, run),
        "model": None,
        "consent": {
            "purposes": list(CONSENT_PURPOSES),
            "forms": [
                {"slug": slug, "version": v} for slug, v in sorted({r.consent_form for r in rows})
            ],
            "checked_at": when.isoformat(),
        },
        "counts": counts,
        "files": dict(sorted(archive.files.items())),
    }
    archive.write("manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
    archive.close()
    return BuildResult(counts=counts, files=archive.files)


def _write_masks(archive: _Zip, n: int, row: ExportRow) -> dict:
    gold = getattr(row.image, "gold_mask", None) if row.source != Source.CROWD else None
    consensus = getattr(row.image, "consensus_mask", None)
    data = _read(gold.mask) if gold is not None else _read(consensus.mask)
    archive.write(f"masks/{row.image.public_id}.png", data)
    if consensus is not None and consensus.probability:
        archive.write(f"probabilities/{row.image.public_id}.png", _read(consensus.probability))
    return coco_segmentation_annotation(n, row, _mask_array(data))


def _counts(rows: list[ExportRow], codes: list[str], segmentation: bool) -> dict:
    sources = Counter(r.source for r in rows)
    counts: dict = {
        "images": len(rows),
        "labels": sum(r.n_labels for r in rows),
        "sources": {s: sources[s] for s in (Source.CROWD, Source.CLINICIAN, Source.GOLD)},
    }
    if not segmentation:
        balance = Counter(r.label for r in rows)
        counts["classes"] = {c: balance[c] for c in codes}
    return counts


def _consensus(dataset: Dataset, run: ConsensusRun | None) -> dict:
    if dataset.task == Dataset.Task.SEGMENTATION:
        return {
            "method": "staple",
            "reference": "Warfield, Zou & Wells 2004",
            "parameters": {
                "threshold": 0.5,
                "retire_mask_agreement": dataset.retire_mask_agreement,
            },
        }
    if run is None:
        return {"method": dataset.consensus_method, "run": None, "parameters": {}}
    return {
        "method": run.method,
        "run": run.pk,
        "kind": run.kind,
        "finished_at": run.finished_at.isoformat(),
        "n_answers": run.n_answers,
        "n_iter": run.n_iter,
        "converged": run.converged,
        "parameters": run.parameters,
    }
