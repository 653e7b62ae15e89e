"""Planner statistics for the selector's gold test, COALESCE(gold_class_id, 0), on PostgreSQL.

annotate.selection filters images by that expression (gold or not) while it walks the
(dataset, status, public_id) index. Without statistics PostgreSQL guesses that 0.5 % of the rows
pass ``= 0`` when about 85 % do, so for a window of more than ~100 rows it judged the index walk
too long and sorted a bitmap scan of everything above the pivot instead (42 ms instead of 1.5 ms
at 100,000 images, EXPLAIN ANALYZE). Extended statistics on the expression (PostgreSQL 14+)
give ANALYZE the real share. SQLite has no such statistics and needs none (its planner keeps the
index walk); the migration does nothing there.
"""

from django.db import migrations

NAME = "annotate_image_gold_key_stats"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE STATISTICS IF NOT EXISTS {NAME} ON (COALESCE(gold_class_id, 0)) "
            "FROM annotate_image"
        )
        schema_editor.execute("ANALYZE annotate_image")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {NAME}")


class Migration(migrations.Migration):
    dependencies = [("annotate", "0008_history_indexes")]

    operations = [migrations.RunPython(create, drop)]
