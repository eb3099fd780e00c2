"""Section 12 end to end: load over HTTP, subscribe from Realtime-Position, never miss an update.

Issues are updated as fast as the server takes it while clients, one after the
other, load the list and subscribe with ``since`` = the position. Every client
ends in exactly the database's state, and none gets a change from before its load.
"""

import asyncio
import itertools
import json
import threading
import urllib.request

import pytest
import websockets

from realtime.position import parse_position

from .conftest import prepare_database, server_env

pytestmark = pytest.mark.integration
_db_names = itertools.count()

CLIENTS = 8
ISSUES = 4


def get(server, path: str, token: str) -> tuple[dict, dict]:
    req = urllib.request.Request(server.http + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        body = json.loads(resp.read())
        return body["results"], parse_position(resp.headers["Realtime-Position"])


def state_of(row: dict) -> tuple:
    return (row["title"], row["status"], row["event_count"])


async def recv(ws, timeout=10.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


@pytest.fixture(scope="module")
def postgres_template(postgres_server):
    name = f"position_template_{next(_db_names)}"
    prepare_database(server_env({"DATABASE_URL": postgres_server.create_database(name)}))
    return name


@pytest.fixture
def postgres_live(postgres_server, postgres_template, server_factory):
    url = postgres_server.create_database(f"position_{next(_db_names)}", template=postgres_template)
    return server_factory(server_env({"DATABASE_URL": url})).start()


async def test_clients_loading_while_issues_change_end_in_the_database_state(server):
    await check_exact(server)


@pytest.mark.services
async def test_on_postgresql_too(postgres_live):
    """READ COMMITTED would read the rows and the seq in two snapshots: the header takes one."""
    await check_exact(postgres_live)


async def check_exact(server):
    token = server.token("alice")
    ids = [server.request("POST", "/api/issues/", {"title": f"issue {n}"}, token)[1]["id"] for n in range(ISSUES)]
    stop = threading.Event()
    writes = []

    def updater():
        n = 0
        while not stop.is_set():
            n += 1
            issue_id = ids[n % ISSUES]
            body = {"title": f"t{n}"} if n % 3 else {"status": "resolved" if n % 2 else "unresolved"}
            status, _ = server.request("PATCH", f"/api/issues/{issue_id}/", body, token)
            writes.append(status)

    thread = threading.Thread(target=updater, daemon=True)
    thread.start()
    clients = []
    try:
        for n in range(CLIENTS):
            rows, pos = await asyncio.to_thread(get, server, "/api/issues/?limit=1000", token)
            ws = await websockets.connect(server.ws_url(f"c{n}", token))
            assert (await recv(ws))["type"] == "connection"
            await ws.send(json.dumps({"type": "subscribe", "channel": "issues", "since": pos["issues"]}))
            clients.append({"ws": ws, "pos": pos["issues"], "state": {r["id"]: state_of(r) for r in rows}})
    finally:
        stop.set()
        thread.join(30)
    assert writes and set(writes) == {200}

    final_rows, final_pos = await asyncio.to_thread(get, server, "/api/issues/?limit=1000", token)
    final = {r["id"]: state_of(r) for r in final_rows}
    for client in clients:
        seqs = []
        # A client that loaded after the last update has nothing to wait for.
        while (seqs[-1] if seqs else client["pos"]) < final_pos["issues"]:
            msg = await recv(client["ws"])
            if msg["type"] == "subscribed":
                assert msg["recovered"] is True
                continue
            assert msg["type"] == "issue_update", msg
            seqs.append(msg["seq"])
            data = msg["data"]
            client["state"][msg["issue_id"]] = (data["title"], data["status"], data["event_count"])
        # Every change after the snapshot, once and in order; none from before it.
        assert seqs == list(range(client["pos"] + 1, final_pos["issues"] + 1))
        assert client["state"] == final
        await client["ws"].close()
    # The clients did load while updates were landing: their positions differ.
    assert len({c["pos"] for c in clients}) > 1
