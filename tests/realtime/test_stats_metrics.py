"""Staff-only stats and Prometheus metrics reflect live connections and traffic."""

import pytest
from channels.db import database_sync_to_async

from realtime.publisher import publish
from tests.conftest import access_token
from tests.realtime.helpers import Client

pytestmark = pytest.mark.django_db(transaction=True)


async def test_stats_and_metrics_count_live_connections_and_traffic(auth_api, alice, staff):
    client = Client(token=access_token(alice))
    await client.connect()
    await client.request({"type": "subscribe", "channel": "issues"})
    await database_sync_to_async(publish)("issues", {"type": "issue_update", "update_type": "updated"})
    await client.recv()

    def read():
        return auth_api(staff).get("/api/realtime/stats/"), auth_api(staff).get("/api/realtime/metrics/")

    stats, metrics = await database_sync_to_async(read)()
    assert stats.status_code == 200
    body = stats.json()
    assert body["connections"] == 1 and body["subscriptions"] == {"issues": 1}
    assert body["this_process"]["connections"] == 1 and body["this_process"]["messages_out"] == 1
    text = metrics.content.decode()
    assert metrics.status_code == 200 and metrics["Content-Type"].startswith("text/plain")
    assert "dexter_realtime_local_connections 1.0" in text
    assert 'dexter_realtime_local_subscriptions{kind="issues"} 1.0' in text
    assert "dexter_realtime_messages_out_total 1.0" in text
    assert "dexter_realtime_users_present 1.0" in text
    await client.close()


def test_stats_and_metrics_are_staff_only(api, auth_api, alice):
    for path in ("/api/realtime/stats/", "/api/realtime/metrics/"):
        assert api.get(path).status_code == 401
        assert auth_api(alice).get(path).status_code == 403
