"""Read what was published (realtime.models.Message rows) and check it against docs/protocol.md."""

from __future__ import annotations

import json
import re

from realtime.models import Message

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ISSUE_DATA_KEYS = {"title", "culprit", "level", "status", "assignee", "event_count", "last_seen", "changes"}


def published(channel: str | None = None, type: str | None = None) -> list[dict]:
    rows = Message.objects.order_by("id")
    if channel is not None:
        rows = rows.filter(channel=channel)
    if type is not None:
        rows = rows.filter(type=type)
    return [json.loads(payload) for payload in rows.values_list("payload", flat=True)]


def assert_envelope(msg: dict, channel: str, seq: int | None = None) -> None:
    assert msg["channel"] == channel
    assert isinstance(msg["seq"], int) and msg["seq"] >= 1
    if seq is not None:
        assert msg["seq"] == seq
    assert TS_RE.match(msg["ts"]), msg["ts"]


def assert_issue_update(msg: dict, channel: str, issue_id, update_type: str, seq: int | None = None) -> dict:
    """The section 4 shape of an issue_update; returns its data."""
    assert set(msg) == {"type", "channel", "seq", "ts", "update_type", "issue_id", "data"}, msg
    assert msg["type"] == "issue_update" and msg["update_type"] == update_type
    assert msg["issue_id"] == str(issue_id)
    assert_envelope(msg, channel, seq)
    data = msg["data"]
    assert ISSUE_DATA_KEYS <= set(data), data
    assert isinstance(data["changes"], dict)
    for change in data["changes"].values():
        assert isinstance(change, list) and len(change) == 2
    assert data["assignee"] is None or isinstance(data["assignee"], str)
    return data


def issue_updates(issue_id) -> tuple[list[dict], list[dict]]:
    """(messages on `issues` about this issue, messages on `issue:<id>`)."""
    on_all = [m for m in published("issues") if m["issue_id"] == str(issue_id)]
    return on_all, published(f"issue:{issue_id}")


def assert_same_on_both(issue_id) -> list[dict]:
    """Each issue_update is on `issues` and on `issue:<id>`, identical but for the envelope."""
    on_all, on_one = issue_updates(issue_id)
    strip = lambda m: {k: v for k, v in m.items() if k not in ("channel", "seq", "ts")}  # noqa: E731
    assert [strip(m) for m in on_all] == [strip(m) for m in on_one]
    assert [m["seq"] for m in on_one] == list(range(1, len(on_one) + 1))
    return on_one
