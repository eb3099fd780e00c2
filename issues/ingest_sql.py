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

from collections.abc import Sequence
from datetime import datetime

from django.db import connections, router
from django.db.models import F

from .models import Event, Issue

# SQLite's oldest bound is 999 parameters a statement; three a row.
EVENT_ROWS_PER_INSERT = 300


def _connection(model):
    return connections[router.db_for_write(model)]


def plain_sql(model=Issue) -> bool:
    return _connection(model).vendor in ("sqlite", "postgresql")


def _columns(model, connection) -> tuple[list, str]:
    fields = list(model._meta.concrete_fields)
    quote = connection.ops.quote_name
    return fields, ", ".join(quote(f.column) for f in fields)


def _from_row(model, connection, fields, row):
    values = list(row)
    if connection.vendor == "sqlite":  # it hands back naive datetimes or text, and 0/1 for booleans
        ops = connection.ops
        for i, field in enumerate(fields):
            kind = field.get_internal_type()
            if kind == "DateTimeField":
                values[i] = ops.convert_datetimefield_value(values[i], None, connection)
            elif kind == "BooleanField" and values[i] is not None:
                values[i] = bool(values[i])
    return model.from_db(connection.alias, [f.attname for f in fields], values)


def select_models(model, where: dict[str, object], *, lock: bool = False) -> list:
    """``model.objects.filter(**where)`` (plain equalities), without compiling a query, in id order;
    ``lock``: ``select_for_update()`` (PostgreSQL; SQLite's write lock is held from BEGIN)."""
    connection = _connection(model)
    if connection.vendor not in ("sqlite", "postgresql"):
        queryset = model.objects.filter(**where).order_by("pk")
        return list(queryset.select_for_update() if lock else queryset)
    suffix = " FOR UPDATE" if lock and connection.vendor == "postgresql" else ""
    quote = connection.ops.quote_name
    fields, columns = _columns(model, connection)
    condition = " AND ".join(f"{quote(model._meta.get_field(name).column)} = %s" for name in where) or "1 = 1"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {quote(model._meta.db_table)} WHERE {condition} ORDER BY {quote('id')}{suffix}",
            list(where.values()),
        )
        return [_from_row(model, connection, fields, row) for row in cursor.fetchall()]


def lock_in_pk_order(fingerprints: Sequence[str]) -> None:
    """PostgreSQL: take the rows' locks in id order first, as every writer of several
    issues does, so two concurrent batches cannot deadlock. (SQLite locks the file.)"""
    connection = _connection(Issue)
    if connection.vendor != "postgresql" or len(fingerprints) < 2:
        return
    quote = connection.ops.quote_name
    table, pk, fp = quote(Issue._meta.db_table), quote("id"), quote(Issue._meta.get_field("fingerprint").column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk} FROM {table} WHERE {fp} = ANY(%s) ORDER BY {pk} FOR UPDATE", [list(fingerprints)])


def bump(fingerprint: str, n: int, now: datetime) -> Issue | None:
    """Count ``n`` more events on the issue of ``fingerprint``; the issue after it, or None."""
    if not plain_sql():
        issue = Issue.objects.select_for_update().filter(fingerprint=fingerprint).first()
        if issue is None:
            return None
        Issue.objects.filter(pk=issue.pk).update(event_count=F("event_count") + n, last_seen=now, updated_at=now)
        issue.refresh_from_db()
        return issue
    connection = _connection(Issue)
    quote = connection.ops.quote_name
    fields, columns = _columns(Issue, connection)
    count, seen, updated, fp = (
        quote(Issue._meta.get_field(f).column) for f in ("event_count", "last_seen", "updated_at", "fingerprint")
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Issue._meta.db_table)} SET {count} = {count} + %s, {seen} = %s, {updated} = %s "
            f"WHERE {fp} = %s RETURNING {columns}",
            [n, stamp, stamp, fingerprint],
        )
        row = cursor.fetchone()
    return None if row is None else _from_row(Issue, connection, fields, row)


def insert_events(rows: Sequence[tuple[int, str]], now: datetime) -> list[int]:
    """``Event`` rows of (issue id, level), all received at ``now``; their ids, in order."""
    if not plain_sql(Event):
        made = Event.objects.bulk_create([Event(issue_id=i, level=level, received_at=now) for i, level in rows])
        return [e.pk for e in made]
    connection = _connection(Event)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(Event._meta.get_field(f).column) for f in ("issue", "level", "received_at"))
    stamp = connection.ops.adapt_datetimefield_value(now)
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), EVENT_ROWS_PER_INSERT):
            chunk = rows[start : start + EVENT_ROWS_PER_INSERT]
            values = ", ".join(["(%s, %s, %s)"] * len(chunk))
            params = [p for issue_id, level in chunk for p in (issue_id, level, stamp)]
            cursor.execute(
                f"INSERT INTO {quote(Event._meta.db_table)} ({columns}) VALUES {values} RETURNING {quote('id')}",
                params,
            )
            # Both return the rows of one multi-row INSERT in its order (Django's bulk_create relies on it).
            ids.extend(r[0] for r in cursor.fetchall())
    return ids


def mark_announced(issue: Issue, now: datetime) -> None:
    """Remember that ``issue``'s count and last_seen as they are in memory were announced at ``now``."""
    issue.announced_count, issue.announced_last_seen, issue.announced_at = issue.event_count, issue.last_seen, now
    if not plain_sql():
        Issue.objects.filter(pk=issue.pk).update(
            announced_count=issue.event_count, announced_last_seen=issue.last_seen, announced_at=now
        )
        return
    connection = _connection(Issue)
    quote = connection.ops.quote_name
    count, seen, at = (
        quote(Issue._meta.get_field(f).column) for f in ("announced_count", "announced_last_seen", "announced_at")
    )
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Issue._meta.db_table)} SET {count} = %s, {seen} = %s, {at} = %s WHERE {quote('id')} = %s",
            [issue.event_count, adapt(issue.last_seen), adapt(now), issue.pk],
        )
