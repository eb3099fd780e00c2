"""docs/grafana-dashboard.json is built only on metric families /api/realtime/metrics/ really exposes."""

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from realtime.metrics import render

pytestmark = pytest.mark.django_db

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def test_every_expression_names_an_exposed_family():
    exposed = set()
    for family in text_string_to_metric_families(render().decode()):
        exposed.add(family.name)
        exposed.update(family.name + suffix for suffix in SUFFIXES)
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bdexter_realtime_\w+", target["expr"])
    }
    assert used and used <= exposed, used - exposed
    wanted = {
        "dexter_realtime_delivery_latency_seconds_bucket",
        "dexter_realtime_closes_total",
        "dexter_realtime_errors_total",
        "dexter_realtime_send_buffer_closes_total",
        "dexter_realtime_rate_limited_total",
        "dexter_realtime_history_replays_total",
    }
    assert wanted <= used


def test_ops_quantiles_read_histogram_buckets_as_prometheus_does():
    from realtime.ops import quantile

    inf = float("inf")
    assert quantile(0.5, []) is None
    assert quantile(0.5, [(0.01, 0), (inf, 0)]) is None
    # 100 observations: 50 under 10 ms, 49 more under 100 ms, one beyond.
    buckets = [(0.01, 50), (0.1, 99), (inf, 100)]
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.25, buckets) == pytest.approx(0.005)
    assert quantile(0.99, buckets) == pytest.approx(0.1)
    assert quantile(0.999, buckets) == 0.1  # past the last finite bound: that bound
