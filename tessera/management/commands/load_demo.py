from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotate.models import Dataset
from tessera import demo, demo_crowd
from tessera.demo_segmentation import load_segmentation_demo


class Command(BaseCommand):
    help = (
        "Load demo datasets from the shared public data and (in DEBUG) demo accounts. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit",
            type=int,
            default=settings.DEMO_IMAGES_PER_DATASET,
            help=(
                "Images per dataset (class-stratified sample). With N >= 40 the 40-slice brain "
                "MR series is also donated through the intake pipeline (a series is all or none)."
            ),
        )
        parser.add_argument(
            "--no-crowd",
            action="store_true",
            help="No simulated crowd labels (tessera/demo_crowd.py; added only with DEBUG or --accounts).",
        )
        parser.add_argument(
            "--accounts",
            action="store_true",
            help="Create demo accounts even with DEBUG off (never do this on a public server).",
        )

    def handle(self, *args, limit: int, accounts: bool, no_crowd: bool, **options):
        try:
            data_dir = demo.data_root()
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        for source in demo.iter_sources():
            added = demo.load_source(source, data_dir=data_dir, limit=limit)
            self.stdout.write(f"{source.name}: {added} images added")
            # Like the demo accounts, the simulated crowd exists only on a demo server.
            if not no_crowd and (settings.DEBUG or accounts):
                labels = demo_crowd.crowd_labels_load(
                    dataset=Dataset.objects.get(slug=source.slug),
                    truth=demo_crowd.source_truth(source, data_dir),
                )
                if labels:
                    self.stdout.write(f"{source.name}: {labels} labels from the simulated crowd")
        self.stdout.write(
            f"Skin lesion outlines: {load_segmentation_demo(data_dir=data_dir, limit=limit)} images added"
        )
        if limit >= demo.BRAIN_MR_SERIES:
            queued = demo.load_brain_mr_intake(data_dir=data_dir)
            self.stdout.write(f"Brain MR anatomy: {queued} DICOM slices sent through intake")
        if settings.DEBUG or accounts:
            for username, role in demo.ensure_demo_accounts():
                self.stdout.write(f"account {username} ({role}) password: {demo.DEMO_PASSWORD}")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
