"""`python manage.py qc_score DATASET [--rescore] [--queue]`.

Scores every image of the dataset with its latest QC model (the batch job over an existing
dataset); flagged images are quarantined and queued for review, never altered. Runs in this
process unless `--queue` hands it to a Celery worker. Resumable: without `--rescore`, images
the current model already scored are skipped.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Dataset
from annotate.qc.scoring import qc_dataset_score


class Command(BaseCommand):
    help = "Score every image of DATASET (slug) with its intake-QC detectors."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="Dataset slug.")
        parser.add_argument("--rescore", action="store_true", help="Also images already scored.")
        parser.add_argument("--queue", action="store_true", help="Run in a Celery worker.")

    def handle(self, *args, dataset: str, rescore: bool, queue: bool, **options):
        found = Dataset.objects.filter(slug=dataset).first()
        if found is None:
            raise CommandError(f"No dataset {dataset!r}.")
        if queue:
            from annotate.tasks import qc_dataset_score_task

            qc_dataset_score_task.delay(found.pk, rescore=rescore)
            self.stdout.write(f"Queued QC scoring of {found.slug}.")
            return
        result = qc_dataset_score(dataset_id=found.pk, rescore=rescore)
        if result.model_version is None:
            raise CommandError(f"{found.slug} has no trained QC model: run qc_train first.")
        rate = result.n_scored / result.seconds if result.seconds else 0.0
        self.stdout.write(
            f"{found.slug}: scored {result.n_scored} images with QC model v{result.model_version} "
            f"in {result.seconds:.1f} s ({rate:.1f} images/s); {result.n_flagged} flagged for review."
        )
