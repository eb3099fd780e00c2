"""The statements of event ingestion, as plain SQL where the database has ``RETURNING``.

Building these through the ORM (compiling a ``select_for_update().filter()``,
a ``bulk_create``, an ``update()``) cost more server CPU than running them: on
the single-event path it was most of the request (bench/README.md, "Lean
publish path"). SQLite (3.35+) and PostgreSQL take the plain statements;
any other database gets the ORM's.

- ``bump(fingerprint, n, now)``: ``event_count + n`` and ``last_seen`` in one
  ``UPDATE ... RETURNING`` of the whole row, so the issue (locked by the update:
  PostgreSQL's row lock; SQLite's write lock is held from BEGIN) comes back
  current with no ``SELECT`` of its own; None when there is no such issue.
- ``insert_events(rows)``: the ``Event`` rows in multi-row ``INSERT``\\s,
  returning their ids in order.
- ``mark_announced(issue, now)``: the coalescing's "announced up to here".
- ``select_models(model, where)``: rows as instances without the ORM's compile
  (the alerts' active rules, read for every ingested batch).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connections, router
from django.db.models import F

from .models import Event, Issue

# SQLite's oldest bound is 999 parameters a statement; three a row.
EVENT_ROWS_PER_INSERT = 300


def _connection(model):
    return connections[router.db_for_write(model)]


PLAIN_VENDORS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class _Shape:
    """A model's columns and quoted names on one database, built once per process
    (quoting and joining them on every statement was a tenth of an ingested event)."""

    attnames: list[str]
    columns: str  # every concrete column, quoted, in field order
    table: str
    column: dict[str, str]  # field name -> quoted column
    pk: str  # the primary key's column, quoted
    datetimes: tuple[int, ...]  # positions SQLite hands back as naive datetimes or text
    booleans: tuple[int, ...]  # and as 0/1


@functools.lru_cache(maxsize=32)
def _shape_of(model, alias: str, vendor: str) -> _Shape:
    quote = connections[alias].ops.quote_name
    fields = list(model._meta.concrete_fields)
    kinds = [f.get_internal_type() for f in fields]
    return _Shape(
        attnames=[f.attname for f in fields],
        columns=", ".join(quote(f.column) for f in fields),
        table=quote(model._meta.db_table),
        column={f.name: quote(f.column) for f in fields},
        pk=quote(model._meta.pk.column),
        datetimes=tuple(i for i, k in enumerate(kinds) if k == "DateTimeField") if vendor == "sqlite" else (),
        booleans=tuple(i for i, k in enumerate(kinds) if k == "BooleanField") if vendor == "sqlite" else (),
    )


def _shape(model, connection) -> _Shape:
    # Keyed by vendor too: a test may point an alias at another database.
    return _shape_of(model, connection.alias, connection.vendor)


def _from_row(model, connection, shape: _Shape, row):
    values = list(row)
    if shape.datetimes or shape.booleans:
        convert = connection.ops.convert_datetimefield_value
        for i in shape.datetimes:
            values[i] = convert(values[i], None, connection)
        for i in shape.booleans:
            if values[i] is not None:
                values[i] = bool(values[i])
    return model.from_db(connection.alias, shape.attnames, values)


@functools.lru_cache(maxsize=64)
def _select_sql(model, alias: str, vendor: str, names: tuple[str, ...], lock: bool) -> str:
    shape = _shape_of(model, alias, vendor)
    condition = " AND ".join(f"{shape.column[name]} = %s" for name in names) or "1 = 1"
    suffix = " FOR UPDATE" if lock and vendor == "postgresql" else ""
    return f"SELECT {shape.columns} FROM {shape.table} WHERE {condition} ORDER BY {shape.pk}{suffix}"


def select_models(model, where: dict[str, object], *, lock: bool = False) -> list:
    """``model.objects.filter(**where)`` (plain equalities), without compiling a query, in id order;
    ``lock``: ``select_for_update()`` (PostgreSQL; SQLite's write lock is held from BEGIN)."""
    connection = _connection(model)
    if connection.vendor not in PLAIN_VENDORS:
        queryset = model.objects.filter(**where).order_by("pk")
        return list(queryset.select_for_update() if lock else queryset)
    sql = _select_sql(model, connection.alias, connection.vendor, tuple(where), lock)
    shape = _shape(model, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, list(where.values()))
        return [_from_row(model, connection, shape, row) for row in cursor.fetchall()]


def lock_in_pk_order(fingerprints: Sequence[str]) -> None:
    """PostgreSQL: take the rows' locks in id order first, as every writer of several
    issues does, so two concurrent batches cannot deadlock. (SQLite locks the file.)"""
    connection = _connection(Issue)
    if connection.vendor != "postgresql" or len(fingerprints) < 2:
        return
    shape = _shape(Issue, connection)
    table, pk, fp = shape.table, shape.pk, shape.column["fingerprint"]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk} FROM {table} WHERE {fp} = ANY(%s) ORDER BY {pk} FOR UPDATE", [list(fingerprints)])


def bump(fingerprint: str, n: int, now: datetime) -> Issue | None:
    """Count ``n`` more events on the issue of ``fingerprint``; the issue after it, or None."""
    connection = _connection(Issue)
    if connection.vendor not in PLAIN_VENDORS:
        issue = Issue.objects.select_for_update().filter(fingerprint=fingerprint).first()
        if issue is None:
            return None
        Issue.objects.filter(pk=issue.pk).update(event_count=F("event_count") + n, last_seen=now, updated_at=now)
        issue.refresh_from_db()
        return issue
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(_bump_sql(connection.alias, connection.vendor), [n, stamp, stamp, fingerprint])
        row = cursor.fetchone()
    return None if row is None else _from_row(Issue, connection, _shape(Issue, connection), row)


@functools.lru_cache(maxsize=8)
def _bump_sql(alias: str, vendor: str) -> str:
    shape = _shape_of(Issue, alias, vendor)
    count, seen, updated, fp = (shape.column[f] for f in ("event_count", "last_seen", "updated_at", "fingerprint"))
    return (
        f"UPDATE {shape.table} SET {count} = {count} + %s, {seen} = %s, {updated} = %s "
        f"WHERE {fp} = %s RETURNING {shape.columns}"
    )


def insert_events(rows: Sequence[tuple[int, str]], now: datetime) -> list[int]:
    """``Event`` rows of (issue id, level), all received at ``now``; their ids, in order."""
    connection = _connection(Event)
    if connection.vendor not in PLAIN_VENDORS:
        made = Event.objects.bulk_create([Event(issue_id=i, level=level, received_at=now) for i, level in rows])
        return [e.pk for e in made]
    stamp = connection.ops.adapt_datetimefield_value(now)
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), EVENT_ROWS_PER_INSERT):
            chunk = rows[start : start + EVENT_ROWS_PER_INSERT]
            params = [p for issue_id, level in chunk for p in (issue_id, level, stamp)]
            cursor.execute(_insert_events_sql(connection.alias, connection.vendor, len(chunk)), params)
            # Both return the rows of one multi-row INSERT in its order (Django's bulk_create relies on it).
            ids.extend(r[0] for r in cursor.fetchall())
    return ids


@functools.lru_cache(maxsize=16)  # a batch needs at most two sizes: full chunks and the rest
def _insert_events_sql(alias: str, vendor: str, rows: int) -> str:
    shape = _shape_of(Event, alias, vendor)
    columns = ", ".join(shape.column[f] for f in ("issue", "level", "received_at"))
    values = ", ".join(["(%s, %s, %s)"] * rows)
    return f"INSERT INTO {shape.table} ({columns}) VALUES {values} RETURNING {shape.pk}"


def mark_announced(issue: Issue, now: datetime) -> None:
    """Remember that ``issue``'s count and last_seen as they are in memory were announced at ``now``."""
    issue.announced_count, issue.announced_last_seen, issue.announced_at = issue.event_count, issue.last_seen, now
    connection = _connection(Issue)
    if connection.vendor not in PLAIN_VENDORS:
        Issue.objects.filter(pk=issue.pk).update(
            announced_count=issue.event_count, announced_last_seen=issue.last_seen, announced_at=now
        )
        return
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            _mark_sql(connection.alias, connection.vendor),
            [issue.event_count, adapt(issue.last_seen), adapt(now), issue.pk],
        )


@functools.lru_cache(maxsize=8)
def _mark_sql(alias: str, vendor: str) -> str:
    shape = _shape_of(Issue, alias, vendor)
    count, seen, at = (shape.column[f] for f in ("announced_count", "announced_last_seen", "announced_at"))
    return f"UPDATE {shape.table} SET {count} = %s, {seen} = %s, {at} = %s WHERE {shape.pk} = %s"
