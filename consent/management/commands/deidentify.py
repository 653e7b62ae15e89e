"""`manage.py deidentify INPUT... --output DIR [--donor-key KEY]`: the intake pipeline, offline.

Runs exactly what web intake runs (`consent.deid.cli.run` → `process_upload`) with the
deployment's DEID_SECRET, writes the cleaned files and DIR/report.json, and exits 0 only when
every input (and every zip member) was cleaned.
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from consent.deid.cli import REPORT_NAME, run
from consent.services.intake import intake_limits


class Command(BaseCommand):
    help = "De-identify DICOM/PNG/JPEG files, folders or zips exactly like web intake."

    def add_arguments(self, parser):
        parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
        parser.add_argument("--output", required=True, type=Path, metavar="DIR")
        parser.add_argument(
            "--donor-key",
            default="offline",
            help="Pseudonymous donor key: keys UIDs, date shift and pseudonym (default: offline).",
        )

    def handle(self, *args, inputs: list[Path], output: Path, donor_key: str, **options):
        report = run(
            inputs,
            output,
            secret=settings.DEID_SECRET.encode(),
            donor_key=donor_key,
            limits=intake_limits(),
        )
        self.stdout.write(
            f"{report['cleaned']} cleaned, {report['rejected']} rejected; "
            f"report: {output / REPORT_NAME}"
        )
        for entry in report["entries"]:
            if entry["status"] == "rejected":
                member = f" [{entry['member']}]" if entry.get("member") else ""
                self.stderr.write(f"rejected {entry['input']}{member}: {entry['reason']}")
        if not report["ok"]:
            sys.exit(1)
