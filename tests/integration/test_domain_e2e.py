"""Issues and alerts publishing themselves from other processes, seen by a real client of daphne."""

import asyncio
import json
import subprocess
import sys

import pytest
import websockets

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration


async def recv(ws, timeout=5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def subscribe(ws, *channels: str) -> None:
    for channel in channels:
        await ws.send(json.dumps({"type": "subscribe", "channel": channel}))
        reply = await recv(ws)
        assert reply["type"] == "subscribed", reply


async def test_issue_saved_in_a_shell_process_reaches_websocket_client(server):
    token = server.token("alice")
    async with websockets.connect(server.ws_url("tab-1", token)) as ws:
        assert (await recv(ws))["authenticated"] is True
        await subscribe(ws, "issues")
        out = await asyncio.to_thread(
            server.shell,
            "from issues.models import Issue\n"
            "issue = Issue.objects.create(title='From a shell', level='fatal')\n"
            "print(issue.pk)",
        )
        issue_id = out.strip().splitlines()[-1]
        msg = await recv(ws)
        assert msg["type"] == "issue_update" and msg["channel"] == "issues" and msg["seq"] == 1
        assert msg["update_type"] == "created" and msg["issue_id"] == issue_id
        assert msg["data"]["title"] == "From a shell" and msg["data"]["level"] == "fatal"
        assert msg["ts"].endswith("Z")

        await subscribe(ws, f"issue:{issue_id}")
        await asyncio.to_thread(
            server.shell,
            "from issues.models import Issue\n"
            f"issue = Issue.objects.get(pk={issue_id})\n"
            "issue.status = 'resolved'\n"
            "issue.save()\n"
            "issue.save()  # no change: nothing more\n",
        )
        got = sorted([await recv(ws), await recv(ws)], key=lambda m: m["channel"])
        assert [m["channel"] for m in got] == ["issue:" + issue_id, "issues"]
        assert [m["seq"] for m in got] == [2, 2]  # `created` was seq 1 on both
        for m in got:
            assert m["update_type"] == "resolved" and m["data"]["resolved_by"] is None
            assert m["data"]["changes"] == {"status": ["unresolved", "resolved"]}
        with pytest.raises(asyncio.TimeoutError):
            await recv(ws, timeout=1.0)


async def test_posted_event_triggers_alert_seen_by_subscriber(server):
    token = server.token("alice")
    server.shell(
        "from alerts.models import Alert\nAlert.objects.create(name='new fatal', condition='match', level='fatal')"
    )
    async with websockets.connect(server.ws_url("tab-1", token)) as ws:
        await recv(ws)
        await subscribe(ws, "alerts", "issues")
        status, body = await asyncio.to_thread(
            server.request, "POST", "/api/events/", {"title": "Segfault", "level": "fatal"}, token
        )
        assert status == 202 and body["event_count"] == 1
        messages = {m["type"]: m for m in [await recv(ws), await recv(ws)]}
        assert messages["issue_update"]["update_type"] == "created"
        trigger = messages["alert_trigger"]
        assert trigger["channel"] == "alerts" and trigger["issue_id"] == body["issue_id"]
        assert trigger["data"]["condition"] == "match" and trigger["data"]["severity"] == "warning"


INGEST = (
    "from issues.events import ingest_event\n"
    "for _ in range({n}):\n"
    "    ingest_event(title='concurrent', culprit='worker.py')\n"
)


def test_concurrent_ingestion_processes_keep_the_exact_count(sqlite_env):
    processes, per_process = 4, 25
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", INGEST.format(n=per_process)],
            cwd=ROOT,
            env=sqlite_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-2000:]
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "import json\n"
         "from issues.models import Issue, Event\n"
         "from realtime.models import Message\n"
         "issue = Issue.objects.get()\n"
         "msgs = [json.loads(p) for p in Message.objects.filter(channel=f'issue:{issue.pk}')"
         ".order_by('seq').values_list('payload', flat=True)]\n"
         "print(json.dumps({'count': issue.event_count, 'events': Event.objects.count(),\n"
         "  'seqs': [m['seq'] for m in msgs], 'last': msgs[-1]['data']['event_count'],\n"
         "  'types': [m['update_type'] for m in msgs]}))"],
        cwd=ROOT, env=sqlite_env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    total = processes * per_process
    assert result["count"] == result["events"] == total
    # One `created`, then coalesced count updates: far fewer than one per event, ending at the exact count.
    assert result["types"][0] == "created" and set(result["types"][1:]) <= {"updated"}
    assert result["seqs"] == list(range(1, len(result["seqs"]) + 1))
    assert len(result["seqs"]) < total / 2
    assert result["last"] == total
