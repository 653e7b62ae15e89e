"""The next-images selector's index on annotate_annotation: (player_id, image_id).

annotate.selection asks, for each candidate image it reads, whether this player already labelled
it (``EXISTS ... WHERE player_id = %s AND image_id = image.id``). Without this index that probe
has to pick between the player index (every label of the player) and the image index (every label
of the image); with it, it is one index lookup. Like 0002, it lives here because the selector is
the games' reader; the integrator may move it to annotate.Annotation.Meta.indexes with
SeparateDatabaseAndState (same name).
"""

from django.db import migrations

INDEX = "annotation_player_image_idx"


class Migration(migrations.Migration):
    dependencies = [
        ("games", "0003_settlement"),
        ("annotate", "0006_active_learning"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX IF NOT EXISTS {INDEX} ON annotate_annotation (player_id, image_id)",
            reverse_sql=f"DROP INDEX IF EXISTS {INDEX}",
        ),
    ]
