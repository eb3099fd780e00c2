"""This process's counters of what happened to its sockets: one set, read by /metrics and the ops console.

Incremented where the thing happens (a close, an error reply, a dropped frame,
a replay, a publication written to sockets) and nowhere else, so the
Prometheus families of ``realtime.metrics`` and the samples of the live
console (``realtime.ops``) can never disagree.

Delivery latency is measured per publication, once, when the hub has offered
it to every local subscriber: from the publication's ``ts`` (taken inside the
publishing transaction, just before its commit) to that moment. So it is the
commit-to-socket latency plus the rest of the publishing transaction: an upper
bound, never flattering. Replays (a subscribe with ``since``, a ``history``
request) are old messages and are not measured.
"""

from __future__ import annotations

import re
import time
from collections import deque
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELIVERY_LATENCY = Histogram(
    "dexter_realtime_delivery_latency_seconds",
    "From a publication's ts (stored in its transaction, just before commit) to its write to this process's sockets",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
CLOSES = Counter("dexter_realtime_closes", "WebSocket connections ended, by close code", ["code"], registry=REGISTRY)
ERRORS = Counter("dexter_realtime_errors", "Error replies sent to clients, by error code", ["code"], registry=REGISTRY)
SEND_BUFFER_CLOSES = Counter(
    "dexter_realtime_send_buffer_closes",
    "Connections closed with 4500: their send buffer passed its bound",
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "dexter_realtime_rate_limited", "Client frames dropped by the per-connection message rate", registry=REGISTRY
)
HISTORY_REPLAYS = Counter(
    "dexter_realtime_history_replays",
    "Replays of stored messages (a subscribe with since, a history request) that sent at least one",
    registry=REGISTRY,
)
HISTORY_REPLAYED = Counter(
    "dexter_realtime_history_replayed_messages", "Stored messages sent by replays", registry=REGISTRY
)
PLAIN_HTTP_REQUESTS = Counter(
    "dexter_realtime_plain_http_requests",
    "HTTP requests read and answered by the server's plain-POST front (realtime/plain_http.py), not by daphne",
    registry=REGISTRY,
)
PLAIN_HTTP_HANDOVERS = Counter(
    "dexter_realtime_plain_http_handovers",
    "HTTP connections the plain-POST front handed to daphne (a request that was not plain, TLS, a WebSocket)",
    registry=REGISTRY,
)

# The last few notable events, for the console's "recent closes" and "slow or
# rate-limited clients" (bounded: a flood of closes keeps only the newest).
RECENT_CLOSES: deque = deque(maxlen=50)
RECENT_TROUBLE: deque = deque(maxlen=50)

_TS = re.compile(r'"ts":"([^"]+)"')


def observe_delivery(text: str) -> None:
    """One publication written to this process's sockets: its latency from ``ts``."""
    match = _TS.search(text)
    if match is None:
        return
    try:
        sent = datetime.fromisoformat(match.group(1)).timestamp()
    except ValueError:
        return
    DELIVERY_LATENCY.observe(max(0.0, time.time() - sent))


def closed(code, reason: str, connection_id: str, user_id, client_id: str, username: str | None = None) -> None:
    code = str(code if code is not None else 1005)
    CLOSES.labels(code).inc()
    RECENT_CLOSES.append(
        {"at": time.time(), "code": code, "reason": reason, "connection_id": connection_id,
         "user_id": user_id, "username": username, "client_id": client_id}
    )  # fmt: skip
    if code == "4500":
        SEND_BUFFER_CLOSES.inc()


def error_sent(code: str) -> None:
    ERRORS.labels(code).inc()


def rate_limited(connection_id: str, user_id, client_id: str, username: str | None = None) -> None:
    RATE_LIMITED.inc()
    trouble("rate limited", connection_id, user_id, client_id, username)


def trouble(what: str, connection_id: str, user_id, client_id: str, username: str | None = None) -> None:
    RECENT_TROUBLE.append(
        {"at": time.time(), "what": what, "connection_id": connection_id, "user_id": user_id,
         "username": username, "client_id": client_id}
    )  # fmt: skip


def replayed(count: int) -> None:
    if count:
        HISTORY_REPLAYS.inc()
        HISTORY_REPLAYED.inc(count)


def totals() -> dict:
    """Every counter's current value (labels flattened), as the console's samples carry them."""
    out: dict = {"closes": {}, "errors": {}}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == "dexter_realtime_closes_total":
                out["closes"][sample.labels["code"]] = sample.value
            elif sample.name == "dexter_realtime_errors_total":
                out["errors"][sample.labels["code"]] = sample.value
            elif sample.name.endswith("_total"):
                out[sample.name.removeprefix("dexter_realtime_").removesuffix("_total")] = sample.value
            elif sample.name == "dexter_realtime_delivery_latency_seconds_bucket":
                out.setdefault("latency_buckets", []).append([sample.labels["le"], sample.value])
            elif sample.name == "dexter_realtime_delivery_latency_seconds_count":
                out["latency_count"] = sample.value
    return out
