"""Intake QC in the platform: scoring latency per image on intake, and the batch job's images/s.

Usage: /work/main/.venv/bin/python bench/qc_platform.py [--train 800 --intake 200 --epochs 20 --threads 2]

Runs on the embedded default (a fresh SQLite file and media folder in a temp dir) with the real
services: `--train` chest X-rays (chest_xray_kermany_subset, 8 donors) stored by `image_create`,
the dataset's detectors trained by `annotate.qc.training.qc_train`, then `--intake` other images
of the same set stored one by one (a quarter turned 90/180/270°, a quarter inverted, half clean)
and each scored by the Celery task intake queues (`qc_image_score_task`, eager): that is the
per-image cost a worker pays on intake (read the stored file, preprocess, forward, write the
scores, quarantine + review item when flagged). Finally the batch job (`qc_dataset_score`,
rescore) over the whole dataset. Training and the batch job use `--threads` intra-op threads;
the per-image intake task always uses one.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--intake", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="tessera-bench-qc-")
    os.environ["TESSERA_VAR_DIR"] = tmp
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tessera.settings")
    import django

    django.setup()
    import logging

    import torch
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone
    from PIL import Image as PILImage

    from annotate.models import Image, ImageQc
    from annotate.qc.scoring import qc_dataset_score
    from annotate.qc.training import qc_train
    from annotate.services import dataset_ensure, image_create
    from annotate.tasks import qc_image_score_task
    from consent.models import Consent, ConsentForm
    from consent.services import donor_create
    from tessera.celery import app
    from tessera.demo import clean_raster

    app.conf.task_always_eager = True
    logging.disable(logging.WARNING)
    settings.TORCH_THREADS = args.threads
    torch.set_num_threads(args.threads)
    call_command("migrate", verbosity=0)
    root = Path(settings.DATA_DIR) / "images" / "chest_xray_kermany_subset"
    rows = list(csv.DictReader((root / "labels.csv").open()))
    if len(rows) < args.train + args.intake:
        raise SystemExit(f"only {len(rows)} images in {root}")
    dataset = dataset_ensure(
        slug="chest", name="Chest", classes=[("NORMAL", "Normal"), ("PNEUMONIA", "Pneumonia")]
    )
    form = ConsentForm.objects.create(
        slug="bench", version=1, title="b", text="b", purposes=["annotation"],
        published_at=timezone.now(),
    )  # fmt: skip
    consents = [
        Consent.objects.create(
            donor=donor_create(),
            form=form,
            decisions={"annotation": "permit"},
            period_start=timezone.now(),
        )  # fmt: skip
        for _ in range(8)
    ]
    started = time.perf_counter()
    for k, row in enumerate(rows[: args.train]):
        image_create(
            dataset=dataset, consent=consents[k % 8], clean=clean_raster(root / "images" / row["file"]),
            source_ref=row["file"],
        )  # fmt: skip
    load_s = time.perf_counter() - started
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; torch {torch.__version__}, {args.threads} threads")  # fmt: skip
    print(f"stored {args.train} training images in {load_s:.1f} s")

    started = time.perf_counter()
    version = qc_train(dataset_id=dataset.pk, epochs=args.epochs)
    train_s = time.perf_counter() - started
    print(
        f"qc_train: {train_s:.1f} s ({args.epochs} epochs, {version.n_images} images); "
        f"enabled {version.enabled}; validation AUC {version.metrics['validation_auc']}"
    )

    rng = np.random.default_rng(0)
    corruptions = {
        "rotate_cw_90": PILImage.Transpose.ROTATE_270,
        "rotate_180": PILImage.Transpose.ROTATE_180,
        "rotate_ccw_90": PILImage.Transpose.ROTATE_90,
    }
    latencies, truth = [], {}
    for k, row in enumerate(rows[args.train : args.train + args.intake]):
        clean = clean_raster(root / "images" / row["file"])
        kind = ("rotation", "inversion", "clean", "clean")[k % 4]
        if kind != "clean":
            with PILImage.open(io.BytesIO(clean.content)) as pil:
                if kind == "rotation":
                    pil = pil.transpose(corruptions[rng.choice(list(corruptions))])
                else:
                    pil = PILImage.eval(pil.convert("L"), lambda v: 255 - v)
                out = io.BytesIO()
                pil.save(out, format="PNG")
                clean = clean.__class__(
                    **{**clean.__dict__, "content": out.getvalue(), "sha256": f"c{k}",
                       "width": pil.width, "height": pil.height}
                )  # fmt: skip
        image = image_create(
            dataset=dataset, consent=consents[k % 8], clean=clean, source_ref=f"intake-{k}"
        )
        truth[image.pk] = kind
        t0 = time.perf_counter()
        qc_image_score_task.delay(image.pk)
        latencies.append(time.perf_counter() - t0)
    ms = np.array(latencies) * 1000
    states = dict(ImageQc.objects.filter(image_id__in=truth).values_list("image_id", "state"))
    flagged = {kind: 0 for kind in ("rotation", "inversion", "clean")}
    totals = {kind: 0 for kind in flagged}
    for pk, kind in truth.items():
        totals[kind] += 1
        flagged[kind] += states.get(pk) == ImageQc.State.PENDING
    print(
        f"intake scoring ({args.intake} images, qc_image_score_task eager): first {ms[0]:.0f} ms "
        f"(loads the model), then median {np.median(ms[1:]):.1f} ms, p95 "
        f"{np.percentile(ms[1:], 95):.1f} ms, max {ms[1:].max():.1f} ms per image"
    )
    by_state = {
        state: ms[1:][[states.get(pk) == state for pk in list(truth)[1:]]]
        for state in (ImageQc.State.CLEAR, ImageQc.State.PENDING)
    }
    print(
        "  median / p95 ms by outcome: "
        + ", ".join(
            f"{state} {np.median(v):.1f} / {np.percentile(v, 95):.1f} (n={v.size})"
            for state, v in by_state.items()
            if v.size
        )
    )
    print(
        "flagged on intake: "
        + ", ".join(f"{kind} {flagged[kind]}/{totals[kind]}" for kind in flagged)
    )
    quarantined = Image.objects.filter(dataset=dataset, status=Image.Status.QUARANTINED).count()
    print(f"quarantined now: {quarantined}")

    started = time.perf_counter()
    result = qc_dataset_score(dataset_id=dataset.pk, rescore=True)
    batch_s = time.perf_counter() - started
    print(
        f"batch job (qc_dataset_score, rescore): {result.n_scored} images in {batch_s:.1f} s = "
        f"{result.n_scored / batch_s:.1f} images/s; {result.n_flagged} flagged and waiting for review"
    )


if __name__ == "__main__":
    main()
