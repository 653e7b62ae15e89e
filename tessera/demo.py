"""Demo data: real public images from ../shared/data/images, demo accounts for every role.

Idempotent: running it again adds only what is missing. Images enter through the same
`image_create` service as intake, under a demo consent that permits annotation and research.
Source metadata beyond the label (age, sex, body site) is deliberately not loaded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image as PILImage
from PIL import ImageOps

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_grant_role
from annotate.models import Dataset, Image
from annotate.services import CleanImage, dataset_ensure, image_create
from consent.models import Consent, ConsentForm, Donor, IntakeBatch, Purpose
from consent.services import audit_event_record, donor_create

logger = logging.getLogger(__name__)

DEMO_PASSWORD = "tessera-demo"  # noqa: S105 - documented demo credential, embedded mode only
GOLD_SHARE = 0.15
THUMB_SIZE = 256
_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"


@dataclass(frozen=True)
class DemoItem:
    path: Path
    label: str
    group: str  # patient or lesion id: one demo donor per group


@dataclass(frozen=True)
class DemoSource:
    slug: str
    name: str
    description: str
    folder: str
    classes: list[tuple[str, str]]
    licence: str
    modality: str

    def items(self, data_dir: Path) -> list[DemoItem]:
        root = data_dir / "images" / self.folder
        rows = list(csv.DictReader((root / "labels.csv").open(newline="")))
        if self.folder == "chest_xray_kermany_subset":
            return [
                DemoItem(root / "images" / r["file"], r["label"], r["patient_id"]) for r in rows
            ]
        return [
            DemoItem(root / "images" / f"{r['image_id']}.jpg", r["dx"], r["lesion_id"])
            for r in rows
        ]

    def attribution(self, data_dir: Path) -> str:
        return (data_dir / "images" / self.folder / "LICENSE_ATTRIBUTION.txt").read_text()


SOURCES = [
    DemoSource(
        slug="chest-xray-pneumonia",
        name="Chest X-ray: pneumonia",
        description="Paediatric chest X-rays. Does the child have pneumonia?",
        folder="chest_xray_kermany_subset",
        classes=[("NORMAL", "Normal"), ("PNEUMONIA", "Pneumonia")],
        licence="CC BY 4.0",
        modality="CR",
    ),
    DemoSource(
        slug="skin-lesions-ham10000",
        name="Skin lesions (HAM10000)",
        description="Dermoscopy of pigmented skin lesions: which of seven diagnoses?",
        folder="ham10000_subset",
        classes=[
            ("nv", "Melanocytic nevus"),
            ("mel", "Melanoma"),
            ("bkl", "Benign keratosis"),
            ("bcc", "Basal cell carcinoma"),
            ("akiec", "Actinic keratosis"),
            ("vasc", "Vascular lesion"),
            ("df", "Dermatofibroma"),
        ],
        licence="CC BY-NC 4.0",
        modality="XC",
    ),
]


def stratified_sample(items: list[DemoItem], limit: int) -> list[DemoItem]:
    """A deterministic, class-stratified sample of exactly min(limit, len(items)) items.

    Quotas follow the class shares by largest remainder, with at least one item per class
    when the limit allows; within a class, items are taken evenly spaced by file name.
    """
    by_class: dict[str, list[DemoItem]] = defaultdict(list)
    for item in sorted(items, key=lambda i: i.path.name):
        by_class[item.label].append(item)
    limit = min(limit, len(items))
    labels = sorted(by_class)
    shares = {label: limit * len(by_class[label]) / len(items) for label in labels}
    quota = {label: min(len(by_class[label]), max(1, int(shares[label]))) for label in labels}
    by_remainder = sorted(labels, key=lambda label: (int(shares[label]) - shares[label], label))
    while sum(quota.values()) > limit:
        largest = max(labels, key=lambda label: (quota[label], label))
        quota[largest] -= 1
    for label in by_remainder:
        if sum(quota.values()) >= limit:
            break
        if quota[label] < len(by_class[label]):
            quota[label] += 1
    picked: list[DemoItem] = []
    for label in labels:
        members = by_class[label]
        picked.extend(members[round(k * len(members) / quota[label])] for k in range(quota[label]))
    return sorted(picked, key=lambda i: i.path.name)


def difference_hash(image: PILImage.Image, size: int = 8) -> str:
    """64-bit dHash as 16 hex digits: near-identical images differ in few bits."""
    small = np.asarray(
        image.convert("L").resize((size + 1, size), PILImage.Resampling.LANCZOS), dtype=np.int16
    )
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def clean_raster(path: Path) -> CleanImage:
    """Re-encode a public JPEG/PNG without any metadata block, with its web thumbnail."""
    with PILImage.open(path) as source:
        source.load()
        pixels = ImageOps.exif_transpose(source)
        pixels = pixels.convert("L" if pixels.mode in ("L", "I", "I;16") else "RGB")
    out = io.BytesIO()
    pixels.save(out, format="PNG", optimize=False)
    content = out.getvalue()
    thumb = pixels.copy()
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    thumb_out = io.BytesIO()
    thumb.convert("RGB").save(thumb_out, format="JPEG", quality=85)
    return CleanImage(
        content=content,
        extension="png",
        thumbnail=thumb_out.getvalue(),
        width=pixels.width,
        height=pixels.height,
        sha256=hashlib.sha256(content).hexdigest(),
        phash=difference_hash(pixels),
    )


def demo_consent_form() -> ConsentForm:
    form, _ = ConsentForm.objects.get_or_create(
        slug="tessera-demo",
        version=1,
        language="en",
        defaults={
            "title": "Donating images to Tessera (demo)",
            "text": (
                "Images from public research datasets, loaded as if donated under this consent. "
                "They may be shown, de-identified, in labelling games and exported to researchers."
            ),
            "purposes": [Purpose.ANNOTATION, Purpose.RESEARCH_EXPORT],
            "published_at": timezone.now(),
        },
    )
    return form


def demo_donor_consent(form: ConsentForm, group: str) -> Consent:
    """The demo donor of a source patient/lesion and their consent, created once.

    The pseudonym is derived from the group id, so re-runs find the same donor and one
    withdrawal removes all of that person's images.
    """
    digest = hashlib.sha256(f"tessera-demo:{group}".encode()).digest()
    pseudonym = "D-" + "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:10])
    donor, made = Donor.objects.get_or_create(pseudonym=pseudonym)
    if made:
        audit_event_record(actor_id=None, action="donor.created", target=donor)
    consent = donor.consents.filter(form=form, status=Consent.Status.ACTIVE).first()
    if consent is None:
        consent = Consent.objects.create(
            donor=donor,
            form=form,
            decisions={Purpose.ANNOTATION: "permit", Purpose.RESEARCH_EXPORT: "permit"},
            period_start=timezone.now(),
            method=Consent.Method.PAPER,
        )
        audit_event_record(
            actor_id=None, action="consent.recorded", target=consent, details={"method": "demo"}
        )
    return consent


def load_source(source: DemoSource, *, data_dir: Path, limit: int) -> int:
    """Load one demo dataset; returns the number of images added."""
    dataset = dataset_ensure(
        slug=source.slug,
        name=source.name,
        classes=source.classes,
        description=source.description,
        attribution=source.attribution(data_dir),
        licence=source.licence,
        modality=source.modality,
    )
    classes = {c.code: c for c in dataset.classes.all()}
    loaded = set(Image.objects.filter(dataset=dataset).values_list("source_ref", flat=True))
    form = demo_consent_form()
    gold_every = round(1 / GOLD_SHARE)
    added = 0
    for index, item in enumerate(stratified_sample(source.items(data_dir), limit)):
        ref = f"{source.folder}:{item.path.name}"
        if ref in loaded:
            continue
        # A share of images is gold: the source dataset's expert label is the truth.
        gold = classes[item.label] if index % gold_every == 0 else None
        with transaction.atomic():
            image_create(
                dataset=dataset,
                consent=demo_donor_consent(form, item.group),
                clean=clean_raster(item.path),
                source_ref=ref,
                gold_class=gold,
            )
        added += 1
    return added


def ensure_demo_accounts() -> list[tuple[str, str]]:
    """One account per role, all with `DEMO_PASSWORD`. Returns (username, role)."""
    created = []
    for role in Role:
        username = f"demo-{role.value}"
        user, made = User.objects.get_or_create(
            username=username, defaults={"display_name": f"Demo {role.label.lower()}"}
        )
        if made:
            user.set_password(DEMO_PASSWORD)
            if role == Role.ADMIN:
                user.is_superuser = True
            user.save()
            user_grant_role(user=user, role=role)
        if role == Role.DONOR and not Donor.objects.filter(user=user).exists():
            donor_create(user_id=user.pk)
        created.append((username, role.value))
    return created


def data_root() -> Path:
    root = Path(settings.DATA_DIR)
    if not (root / "images").is_dir():
        raise FileNotFoundError(
            f"Demo data not found at {root}/images. Set TESSERA_DATA_DIR to the shared data folder."
        )
    return root


def iter_sources() -> Iterator[DemoSource]:
    yield from SOURCES


BRAIN_MR_FOLDER = "dicom_mr_brain_toshiba"
BRAIN_MR_SERIES = 40


def load_brain_mr_intake(*, data_dir: Path) -> int:
    """Donate the 40-slice real brain MR series through the real intake pipeline.

    One demo donor with a demo consent uploads the series into the unlabelled "Brain MR
    anatomy" dataset (for contour practice and to show DICOM windowing); every slice goes
    through `intake_batch_create` and the Celery task exactly like a donor's upload. Idempotent:
    nothing happens once the dataset has an intake batch. Returns the number of files queued.
    """
    from django.core.files.uploadedfile import SimpleUploadedFile

    from consent.services.intake import intake_batch_create

    root = data_dir / "images" / BRAIN_MR_FOLDER
    files = sorted(root.rglob("*.dcm"))
    if len(files) != BRAIN_MR_SERIES:
        raise FileNotFoundError(f"Expected {BRAIN_MR_SERIES} DICOM slices under {root}.")
    dataset = dataset_ensure(
        slug="brain-mr-anatomy",
        name="Brain MR anatomy",
        classes=[],
        task=Dataset.Task.SEGMENTATION,
        target_structure="Brain",
        description="One real axial brain MR series (unlabelled), donated through intake.",
        attribution=(root / "LICENSE_ATTRIBUTION.txt").read_text(),
        licence="BSD-2-Clause",
        modality="MR",
    )
    if IntakeBatch.objects.filter(dataset=dataset).exists():
        return 0
    consent = demo_donor_consent(demo_consent_form(), "brain-mr-toshiba")
    uploads = [
        SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/dicom")
        for path in files
    ]
    intake_batch_create(uploaded_by=None, consent=consent, dataset=dataset, files=uploads)
    return len(uploads)
