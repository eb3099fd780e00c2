"""What a server still holds for connections that are gone: rows, hub entries, presence.

Read through the public surface only: ``/api/realtime/stats/`` (staff) gives the
``Connection`` rows of every server and this process's hub (connections and
subscribed channels); ``/api/realtime/presence/`` gives who is not offline.
"""

from __future__ import annotations

import time


def leftovers(server, staff_token: str) -> dict:
    status, stats = server.request("GET", "/api/realtime/stats/", token=staff_token)
    assert status == 200, stats
    status, people = server.request("GET", "/api/realtime/presence/", token=staff_token)
    assert status == 200, people
    local = stats["this_process"]
    return {
        "connection_rows": stats["connections"],
        "hub_connections": local.get("connections", 0),
        "hub_channels": sorted(local.get("subscriptions", {})),
        "hub_tasks": local.get("tasks") or 0,
        "online": sorted(p["username"] for p in people if p["status"] != "offline"),
    }


def is_clean(found: dict, baseline_tasks: int | None = None) -> bool:
    tasks_ok = baseline_tasks is None or found["hub_tasks"] <= baseline_tasks
    return (
        found["connection_rows"] == 0
        and found["hub_connections"] == 0
        and not found["hub_channels"]
        and not found["online"]
        and tasks_ok
    )


def wait_until_clean(servers, staff_token: str, timeout: float, baseline_tasks: dict | None = None) -> list[dict]:
    """Poll every server until none holds anything; returns the last readings.

    ``timeout`` must stay below the heartbeat interval when the point is to see
    what ``disconnect()`` released, not what the hub's maintenance swept later.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = [leftovers(s, staff_token) for s in servers]
        baselines = [None if baseline_tasks is None else baseline_tasks.get(s.port) for s in servers]
        if all(is_clean(f, b) for f, b in zip(found, baselines, strict=True)) or time.monotonic() > deadline:
            return found
        time.sleep(0.25)
