"""Event ingestion's plain SQL on PostgreSQL (issues/ingest_sql.py), through a real server.

Two clients post overlapping batches at once: creations race (one wins, the
other counts on its row), bumps lock rows in id order (no deadlock), and every
event is counted exactly once.
"""

from __future__ import annotations

import itertools
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import prepare_database, server_env

pytestmark = pytest.mark.integration

_names = itertools.count()


@pytest.fixture
def postgres_env(postgres_server):
    url = postgres_server.create_database(f"ingest_pg_{next(_names)}")
    env = server_env({"DATABASE_URL": url, "EVENTS_THROTTLE": "100000/min"})
    prepare_database(env)
    return env


def test_concurrent_batches_on_postgresql_count_every_event(postgres_env, server_factory):
    server = server_factory(postgres_env).start()
    token = server.token("admin")
    fingerprints = [f"fp-{i}" for i in range(12)]

    def post(client: int) -> list[int]:
        statuses = []
        for round_ in range(6):
            # Each client walks the fingerprints in its own order, so rows are met in different orders.
            order = fingerprints if client % 2 == 0 else fingerprints[::-1]
            body = [{"title": f"E {fp}", "fingerprint": fp} for fp in order for _ in range(round_ + 1)]
            status, answer = server.request("POST", "/api/events/", body, token)
            assert status == 202, answer
            statuses.append(status)
        return statuses

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(post, range(3)))

    status, page = server.request("GET", "/api/issues/?limit=100", token=token)
    assert status == 200, page
    counts = Counter({issue["fingerprint"]: issue["event_count"] for issue in page["results"]})
    per_fingerprint = 3 * sum(range(1, 7))  # 3 clients, rounds of 1..6 events each
    assert counts == Counter({fp: per_fingerprint for fp in fingerprints})
