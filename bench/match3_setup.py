"""Shared set-up of the match-three benchmarks: Django on a chosen database, a big dataset.

``--db sqlite`` uses a file under /tmp; ``--db postgres`` uses DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/tessera_bench_match3, created if missing). The dataset is
created once and reused by later runs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PG_URL = "postgres://postgres@127.0.0.1:5432/tessera_bench_match3"


def configure(db: str, *, migrate: bool = True) -> None:
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tessera.settings")
    if db == "postgres":
        url = os.environ.setdefault("DATABASE_URL", PG_URL)
        name = url.rsplit("/", 1)[1]
        exists = subprocess.run(
            [
                "psql",
                url.rsplit("/", 1)[0] + "/postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname='{name}'",  # noqa: S608
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not exists:
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
        os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 50)
        os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
        os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    else:
        os.environ.pop("DATABASE_URL", None)
        var = Path(tempfile.gettempdir()) / "tessera-bench-match3"
        var.mkdir(exist_ok=True)
        os.environ["TESSERA_VAR_DIR"] = str(var)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    if migrate:
        call_command("migrate", verbosity=0)
    if migrate and db == "postgres":
        # What autovacuum does on a production server; this machine's PostgreSQL runs with
        # autovacuum off, and without statistics on the tables the earlier runs filled the
        # planner picks hash joins over all 100,000 images (a moves request's PostgreSQL time
        # went from 4 to 22 ms after a few runs).
        _analyze()


def _analyze() -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def big_dataset(slug: str, n_images: int, n_donors: int = 1000, gold_share: float = 0.15):
    """A two-class dataset with ``n_images`` active images (created on first use)."""
    from django.utils import timezone

    from annotate.models import Image, LabelClass
    from annotate.services import dataset_ensure
    from consent.models import Consent, ConsentForm, Donor

    dataset = dataset_ensure(slug=slug, name=slug, classes=[("a", "A"), ("b", "B")], modality="CR")
    have = Image.objects.filter(dataset=dataset).count()
    if have >= n_images:
        return dataset
    form, _ = ConsentForm.objects.get_or_create(
        slug="bench",
        version=1,
        language="en",
        defaults={"title": "bench", "text": "bench", "purposes": ["annotation"]},
    )
    donors = Donor.objects.bulk_create(
        [Donor(pseudonym=f"B{uuid.uuid4().hex[:12]}") for _ in range(n_donors)]
    )
    consents = Consent.objects.bulk_create(
        [
            Consent(
                donor=d, form=form, decisions={"annotation": "permit"}, period_start=timezone.now()
            )
            for d in donors
        ]
    )
    classes = list(LabelClass.objects.filter(dataset=dataset).order_by("order"))
    rows = []
    for k in range(have, n_images):
        consent = consents[k % len(consents)]
        gold = classes[k % 2] if (k * 7919) % 100 < gold_share * 100 else None
        rows.append(
            Image(
                dataset=dataset,
                donor_id=consent.donor_id,
                consent=consent,
                sha256=hashlib.sha256(str(k).encode()).hexdigest(),
                gold_class=gold,
            )
        )
        if len(rows) == 5000:
            Image.objects.bulk_create(rows)
            rows = []
    Image.objects.bulk_create(rows)
    _analyze()
    return dataset


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]
