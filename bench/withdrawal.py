"""Time from a donor's withdrawal to the removal of their images (rows + files), at several sizes.

Usage: /work/main/.venv/bin/python bench/withdrawal.py [--images 10 100 1000] [--labels 5]

Runs on the embedded default (a fresh SQLite file and media folder in a temp dir), with the
real services: images stored by `image_create`, labels as `Annotation` rows, then
`consent_withdraw` in autocommit mode, so its on-commit file deletion runs inside the timing.
Prints, per size: the whole call (transaction + file deletion) and the per-image cost.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--labels", type=int, default=5, help="labels per image")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="tessera-bench-withdrawal-")
    os.environ["TESSERA_VAR_DIR"] = tmp
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tessera.settings")
    import django

    django.setup()
    import logging

    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.models import User
    from annotate.models import Annotation, Image
    from annotate.services import CleanImage, dataset_ensure, image_create
    from consent.models import Consent, ConsentForm
    from consent.services import donor_create
    from consent.services.withdrawal import consent_withdraw
    from tessera.celery import app

    app.conf.task_always_eager = True
    logging.disable(logging.INFO)
    call_command("migrate", verbosity=0)
    player = User.objects.create(username="bench-player")
    dataset = dataset_ensure(slug="bench", name="Bench", classes=[("a", "A"), ("b", "B")])
    label = dataset.classes.first()
    form = ConsentForm.objects.create(
        slug="bench", version=1, title="b", text="b", purposes=["annotation"],
        published_at=timezone.now(),
    )  # fmt: skip
    png = Path(settings.DATA_DIR) / "images" / "ham10000_subset" / "images"
    sample = sorted(png.glob("*.jpg"))[0].read_bytes()
    print(f"withdrawal → removal, {args.labels} labels per image, SQLite + local media")
    print(f"{'images':>7} {'total ms':>10} {'ms/image':>9}")
    for n in [1, *args.images]:  # the first (1 image) warms imports and the Celery app up
        consent = Consent.objects.create(
            donor=donor_create(), form=form, decisions={"annotation": "permit"},
            period_start=timezone.now(),
        )  # fmt: skip
        for i in range(n):
            image = image_create(
                dataset=dataset, consent=consent,
                clean=CleanImage(content=sample, extension="jpg", thumbnail=sample, width=600,
                                 height=450, sha256=f"{n}-{i}", phash=""),
            )  # fmt: skip
            Annotation.objects.bulk_create(
                Annotation(image=image, player=player, label_class=label, source="match3",
                           idempotency_key=f"{n}-{i}-{k}")
                for k in range(args.labels)
            )  # fmt: skip
        started = time.perf_counter()
        result = consent_withdraw(consent_id=consent.pk, actor_id=None, channel="admin")
        elapsed = time.perf_counter() - started
        removed = not Image.objects.filter(pk__in=result.image_ids).exclude(file="").exists()
        files_left = sum(1 for _ in Path(settings.MEDIA_ROOT).rglob("*.jpg"))
        if len(result.image_ids) != n or not removed or files_left:
            raise SystemExit(f"withdrawal incomplete: {files_left} files left")
        if n == 1:
            continue
        print(f"{n:>7} {elapsed * 1000:>10.1f} {elapsed * 1000 / n:>9.2f}")


if __name__ == "__main__":
    main()
