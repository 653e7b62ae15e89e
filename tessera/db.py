"""Small database helpers for hot paths the ORM makes costly: SQL written once per model."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connection
from django.db.models import BooleanField, CharField, Field, IntegerField, Model, TextField
from django.utils import timezone

M = TypeVar("M", bound=Model)


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


@functools.cache
def _converters(model: type[Model]) -> tuple[list[str], tuple[tuple[Any, list[Any]], ...]]:
    """The model's field names in column order, and each column's converters from the database
    value (what the ORM's compiler applies: the backend's, then the field's own)."""
    fields = model._meta.concrete_fields
    converters = []
    for f in fields:
        col = f.get_col(model._meta.db_table)
        converters.append(
            (col, [*connection.ops.get_db_converters(col), *f.get_db_converters(connection)])
        )
    return [f.attname for f in fields], tuple(converters)


def instance_from_row(model: type[M], row: Sequence[Any]) -> M:
    """A model instance from a row of all its concrete columns in field order, converted as the
    ORM converts them: for a hot query written as SQL once (a ``RawQuerySet`` resolves its
    columns and init order again on every call)."""
    names, converters = _converters(model)
    values = []
    for value, (col, funcs) in zip(row, converters, strict=True):
        for func in funcs:
            value = func(value, col, connection)
        values.append(value)
    return model.from_db(connection.alias, names, values)


@functools.cache
def _update_sql(model: type[Model], fields: tuple[str, ...]) -> str:
    q = connection.ops.quote_name
    meta = model._meta
    assignments = ", ".join(f"{q(meta.get_field(f).column)} = %s" for f in fields)
    return f"UPDATE {q(meta.db_table)} SET {assignments} WHERE {q(meta.pk.column)} = %s"  # noqa: S608


def update_fields(obj: Model, fields: tuple[str, ...]) -> None:
    """Write ``fields`` of ``obj``'s row: one UPDATE whose SQL is written once per model and field
    set (what ``QuerySet.filter(pk=...).update(...)`` does, without building and compiling it on
    every call). Values are prepared as ``save()`` prepares them, ``auto_now`` included: a
    field of ``fields`` that has it is set to now on ``obj`` too."""
    meta = type(obj)._meta
    values = [
        meta.get_field(f).get_db_prep_save(meta.get_field(f).pre_save(obj, add=False), connection)
        for f in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(type(obj), fields), [*values, obj.pk])


@functools.cache
def _select_sql(model: type[Model], where: str, order_by: str, lock: bool) -> str:
    meta = model._meta
    q = connection.ops.quote_name
    columns = ", ".join(q(f.column) for f in meta.concrete_fields)
    sql = f"SELECT {columns} FROM {q(meta.db_table)} WHERE {where}"  # noqa: S608
    if order_by:
        sql += f" ORDER BY {order_by}"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql


def instances(
    model: type[M],
    where: str,
    params: Sequence[Any],
    *,
    order_by: str = "",
    lock: bool = False,
) -> list[M]:
    """The rows of ``model`` that match ``where`` (SQL over its columns, ``%s`` for each of
    ``params``, which must be database values: ``Field.get_db_prep_value``), as instances.

    The statement is written once per model and condition, not built and compiled by the ORM
    on every call: for the few reads a hot request repeats. ``lock`` adds ``FOR UPDATE`` where
    the database has it (the row stays locked until the transaction ends).
    """
    with connection.cursor() as cursor:
        cursor.execute(_select_sql(model, where, order_by, lock), list(params))
        rows = cursor.fetchall()
    return [instance_from_row(model, row) for row in rows]


def instance(model: type[M], where: str, params: Sequence[Any], *, lock: bool = False) -> M | None:
    """The one row of ``model`` that matches ``where``, or None (see ``instances``)."""
    found = instances(model, where, params, lock=lock)
    return found[0] if found else None


def prefetched(obj: Model, name: str, related: list[Model]) -> None:
    """Give ``obj`` its reverse relation ``name`` as ``prefetch_related(name)`` would, from rows
    read some other way: ``obj.<name>.all()`` then returns ``related`` without a query."""
    manager = getattr(obj, name)
    queryset = manager.get_queryset()
    queryset._result_cache = list(related)
    queryset._prefetch_done = True
    if not hasattr(obj, "_prefetched_objects_cache"):
        obj._prefetched_objects_cache = {}
    obj._prefetched_objects_cache[name] = queryset


@functools.cache
def _insert_rows_sql(
    model: type[Model],
    fields: tuple[Field, ...],
    n: int,
    unless_taken: bool,
    returning: tuple[str, ...],
) -> str:
    meta = model._meta
    q = connection.ops.quote_name
    columns = ", ".join(q(f.column) for f in fields)
    if connection.vendor == "postgresql":
        # One array per column, as Django's bulk_create does there: the statement has a
        # placeholder per column, not per value, so it stays short and psycopg parses it once
        # (a statement over 4 KiB or 50 parameters is parsed again on every call). Bound on the
        # server, the arrays go in binary (%b): psycopg's text form escaped every element in
        # Python, twice the time for a batch of moves.
        mark = "%b" if connection.settings_dict["OPTIONS"].get("server_side_binding") else "%s"
        arrays = ", ".join(f"{mark}::{f.db_type(connection).split('(')[0]}[]" for f in fields)
        rows = f"SELECT * FROM UNNEST({arrays})"  # noqa: S608 - column types only
    else:
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        rows = "VALUES " + ", ".join([row] * n)
    sql = f"INSERT INTO {q(meta.db_table)} ({columns}) {rows}"  # noqa: S608
    if unless_taken:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(q(meta.get_field(f).column) for f in returning)
    return sql


@functools.cache
def _own_fields(model: type[Model]) -> tuple[Field, ...]:
    return tuple(f for f in model._meta.concrete_fields if not f.primary_key)


# Fields whose database value is the Python value itself (for the types their attributes hold).
_AS_IS = (IntegerField, CharField, TextField, BooleanField)


@functools.cache
def _rows_plan(
    model: type[Model], columns: tuple[str, ...]
) -> tuple[tuple[Field, ...], tuple[Field | None, ...], tuple[Field, ...]]:
    """For ``insert_rows``: all the columns written (those given, then the rest), which given
    ones need ``get_db_prep_save`` (None: stored as they are), and the fields left to their
    defaults."""
    meta = model._meta
    given = tuple(meta.get_field(name) for name in columns)
    if any(f.primary_key or not f.concrete for f in given):
        raise ValueError(f"insert_rows writes concrete, non-key columns: {columns}")
    rest = tuple(f for f in _own_fields(model) if f not in given)
    for f in rest:
        if not (getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)):
            # What a model instance would store: strings default to "" (Field.get_default).
            if not f.has_default() and not f.null and not f.empty_strings_allowed:
                raise ValueError(f"insert_rows needs a value for {model.__name__}.{f.attname}")
    prep = tuple(None if isinstance(getattr(f, "target_field", f), _AS_IS) else f for f in given)
    return given + rest, prep, rest


def insert_rows(
    model: type[Model],
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    *,
    unless_taken: bool = False,
    returning: tuple[str, ...] = (),
) -> list[tuple[Any, ...]]:
    """INSERT ``rows`` of ``columns`` (attribute names: ``image_id``, not ``image``) into
    ``model``'s table in one statement written once per model and columns (and, but on
    PostgreSQL, per count): what ``bulk_create`` does, without building its query on every
    call and without a model instance per row. Signals are not sent. A unique conflict raises
    ``IntegrityError``, or with ``unless_taken`` skips that row (``ON CONFLICT DO NOTHING``: no
    savepoint needed inside a transaction). Returns the ``returning`` columns of the rows
    inserted (raw database values), none for the rows skipped.

    Values are what the model's attributes would hold (ints, strings, bools are stored as they
    are; dates, JSON and other types go through the field's ``get_db_prep_save``). The fields
    not named get their default, computed per row, or for ``auto_now``/``auto_now_add`` the
    current time, one for the whole call.
    """
    if not rows:
        return []
    fields, prep, rest = _rows_plan(model, columns)
    now = timezone.now()
    timed = [getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) for f in rest]
    prepared = [
        [
            value if f is None else f.get_db_prep_save(value, connection)
            for f, value in zip(prep, row, strict=True)
        ]
        + [
            f.get_db_prep_save(now if is_timed else f.get_default(), connection)
            for f, is_timed in zip(rest, timed, strict=True)
        ]
        for row in rows
    ]
    unnest = connection.vendor == "postgresql"
    sql = _insert_rows_sql(model, fields, 0 if unnest else len(rows), unless_taken, returning)
    values = (
        [list(column) for column in zip(*prepared, strict=True)]
        if unnest
        else [v for row in prepared for v in row]
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchall() if returning else []
