"""Small database helpers for hot paths the ORM makes costly: SQL written once per model."""

from __future__ import annotations

import functools

from django.db import connection
from django.db.models import Field, Model


@functools.cache
def _insert_sql(model: type[Model]) -> tuple[str, tuple[Field, ...]]:
    meta = model._meta
    q = connection.ops.quote_name
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    columns = ", ".join(q(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = (
        f"INSERT INTO {q(meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608
        f" ON CONFLICT DO NOTHING RETURNING {q(meta.pk.column)}"
    )
    return sql, fields


def insert_unless_taken(obj: Model) -> bool:
    """INSERT ``obj`` unless its row would break a unique constraint; True when it was stored.

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (PostgreSQL; SQLite 3.35+): no savepoint
    and no IntegrityError to recover from inside a transaction, which is what a ``create`` in
    ``atomic()`` costs (two more round trips). Field defaults and ``auto_now_add`` apply as in
    ``save()``; signals are not sent. The primary key must be an auto field: ``obj`` gets it.
    """
    model = type(obj)
    sql, fields = _insert_sql(model)
    values = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return True
