"""Counts every database query of a server process, for ``bench.storm``.

Installed by ``bench/storm_settings.py`` (never by the project's settings): each
new database connection gets an ``execute_wrapper`` that counts its statements
by verb and table. On SIGUSR1 the process writes the counts so far, as JSON, to
``BENCH_QUERY_COUNTS`` (the file is replaced whole, so a reader never sees half).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections import Counter

_counts: Counter[str] = Counter()
_lock = threading.Lock()
# The table a statement is about: the first one after FROM, INTO or UPDATE.
_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)


def _count(execute, sql, params, many, context):
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    match = _TABLE.search(sql)
    key = f"{verb} {match.group(1)}" if match else verb
    with _lock:
        _counts[key] += 1
    return execute(sql, params, many, context)


def _on_connection(sender, connection, **kwargs) -> None:
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(_counts)


def _dump(signum, frame) -> None:
    path = os.environ["BENCH_QUERY_COUNTS"]
    with open(path + ".tmp", "w") as out:
        json.dump(snapshot(), out)
    os.replace(path + ".tmp", path)


def install() -> None:
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection, dispatch_uid="bench.query_counter")
    if os.environ.get("BENCH_QUERY_COUNTS"):
        signal.signal(signal.SIGUSR1, _dump)
