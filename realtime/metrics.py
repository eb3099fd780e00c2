"""Prometheus metrics of this server process, read at scrape time.

Nothing is counted twice: the hub's own counters and a few table counts are
turned into metric families when ``/metrics`` is scraped, and the event
counters of ``realtime.counters`` (delivery latency, closes and errors by code,
send-buffer closes, rate-limit hits, history replays) are rendered as they are.
Delivering a publication costs one histogram observation, not one per socket.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import counters
from .hub import running_hub
from .models import Connection, Message, Presence


class RealtimeCollector:
    def collect(self):
        hub = running_hub()
        stats = hub.stats if hub is not None else {"messages_in": 0, "messages_out": 0, "publications": 0}
        local = GaugeMetricFamily("dexter_realtime_local_connections", "Live WebSocket connections of this process")
        local.add_metric([], len(hub.connections) if hub is not None else 0)
        yield local
        subs = GaugeMetricFamily(
            "dexter_realtime_local_subscriptions", "Subscriptions of this process per channel kind", labels=["kind"]
        )
        kinds: dict[str, int] = {}
        for channel, members in hub.subscribers.items() if hub is not None else []:
            kind = channel.split(":", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + len(members)
        for kind, count in sorted(kinds.items()):
            subs.add_metric([kind], count)
        yield subs
        for name, help_text in (
            ("messages_in", "Client frames received by this process"),
            ("messages_out", "Publications written to sockets by this process"),
            ("publications", "Publications this process's hub handled"),
        ):
            counter = CounterMetricFamily(f"dexter_realtime_{name}", help_text)
            counter.add_metric([], stats[name])
            yield counter
        for name, help_text, value in (
            ("connections", "Live connections of all servers (rows)", Connection.objects.count()),
            ("users_present", "Users not offline", Presence.objects.exclude(status="offline").count()),
            ("stored_messages", "Messages kept in history", Message.objects.count()),
        ):
            gauge = GaugeMetricFamily(f"dexter_realtime_{name}", help_text)
            gauge.add_metric([], value)
            yield gauge


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RealtimeCollector())
    # The event counters of realtime.counters: latency, closes, errors, limits, replays.
    return generate_latest(registry) + generate_latest(counters.REGISTRY)
