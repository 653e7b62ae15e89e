"""The next-images selector's index on annotate_image: (dataset, status, public_id).

annotate.selection walks images of one dataset in play from a random public id upwards
(ORDER BY public_id LIMIT n). With only the (dataset, status) index the planners sort every image
of the dataset first (SQLite: ~300 ms at 100,000 images); this index serves the equality, the
range and the order at once. It lives here because the selector is the games' reader; the
integrator may move it to annotate.Image.Meta.indexes with SeparateDatabaseAndState (same name).
"""

from django.db import migrations

INDEX = "image_selection_idx"


class Migration(migrations.Migration):
    dependencies = [
        ("games", "0001_initial"),
        ("annotate", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX IF NOT EXISTS {INDEX} ON annotate_image (dataset_id, status, public_id)",
            reverse_sql=f"DROP INDEX IF EXISTS {INDEX}",
        ),
    ]
