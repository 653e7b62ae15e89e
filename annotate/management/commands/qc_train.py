"""`python manage.py qc_train DATASET [--epochs N] [--seed S] [--target-fpr F]`.

Trains the dataset's intake-QC detectors in this process (the same service as the Celery task)
and prints the new version: enabled detectors, thresholds, validation AUC.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Dataset
from annotate.qc.training import QC_TARGET_FPR, qc_train
from tessera.errors import ApplicationError


class Command(BaseCommand):
    help = "Train intake-QC detectors of DATASET (slug) on its accepted images."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="Dataset slug.")
        parser.add_argument("--epochs", type=int, default=None)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--target-fpr", type=float, default=QC_TARGET_FPR)

    def handle(self, *args, dataset: str, epochs, seed: int, target_fpr: float, **options):
        found = Dataset.objects.filter(slug=dataset).first()
        if found is None:
            raise CommandError(f"No dataset {dataset!r}.")
        try:
            version = qc_train(dataset_id=found.pk, epochs=epochs, seed=seed, target_fpr=target_fpr)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            json.dumps(
                {
                    "version": version.version,
                    "n_images": version.n_images,
                    "n_excluded": version.n_excluded,
                    "enabled": version.enabled,
                    "thresholds": version.thresholds,
                    "metrics": version.metrics,
                },
                indent=2,
            )
        )
