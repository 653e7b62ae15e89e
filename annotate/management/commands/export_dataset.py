"""`python manage.py export_dataset DATASET --output FILE.zip [--format csv|coco]`.

The same builder as the researcher's web export: records a versioned snapshot (an `Export` with
no requester), builds it in this process and copies the archive to FILE.zip. Exit status 0 only
when the archive was written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.export import ExportFilters, export_build, export_request
from annotate.models import Dataset, Export
from tessera.errors import ApplicationError


class Command(BaseCommand):
    help = "Export a consent-checked consensus snapshot of DATASET (slug) to a zip archive."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="Dataset slug.")
        parser.add_argument("--output", required=True, type=Path, help="Archive to write (.zip).")
        parser.add_argument(
            "--format",
            choices=["csv", "coco"],
            default="csv",
            help="labels.csv (default) or COCO JSON; images, masks, manifest and datasheet always.",
        )
        parser.add_argument("--classes", default="", help="Comma-separated class codes to keep.")
        parser.add_argument("--min-confidence", type=float, default=0.0)
        parser.add_argument("--min-labels", type=int, default=0)
        parser.add_argument("--gold-only", action="store_true")

    def handle(self, *args, dataset: str, output: Path, **options):
        found = Dataset.objects.filter(slug=dataset).first()
        if found is None:
            raise CommandError(f"No dataset {dataset!r}.")
        if output.suffix.lower() != ".zip":
            raise CommandError("--output must name a .zip file.")
        if not output.parent.is_dir():
            raise CommandError(f"Folder {output.parent} does not exist.")
        filters = ExportFilters(
            classes=tuple(c for c in options["classes"].split(",") if c),
            min_confidence=options["min_confidence"],
            min_labels=options["min_labels"],
            gold_only=options["gold_only"],
        )
        try:
            export = export_request(
                user=None, dataset=found, filters=filters, fmt=options["format"], queue=False
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        export = export_build(export_id=export.pk)
        if export.status != Export.Status.READY:
            raise CommandError(f"Export failed: {export.error}")
        with export.file.open("rb") as source, open(output, "wb") as target:
            shutil.copyfileobj(source, target)
        self.stdout.write(
            f"{found.slug} v{export.version}: {export.counts.get('images', 0)} images, "
            f"sha256 {export.sha256} -> {output}"
        )
