from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from tessera.media import media_sweep


class Command(BaseCommand):
    help = "Delete stored media files that no database row names (older than the grace period)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=settings.MEDIA_SWEEP_GRACE_HOURS,
            help="Keep unnamed files younger than this (a row may still be committing).",
        )

    def handle(self, *args, dry_run: bool, grace_hours: float, **options):
        result = media_sweep(grace=timedelta(hours=grace_hours), dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"scanned {result.scanned} files, {result.referenced} names in the database; "
            f"{result.orphaned} orphaned, {verb} {result.orphaned if dry_run else result.deleted}"
            f" ({result.bytes_freed} bytes), {result.failed} failed"
        )
