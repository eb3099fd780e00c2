"""The shapes of what issues publish (docs/protocol.md section 4), written down once.

Every message is built here whole and published with ``realtime.publisher.publish``
(which adds ``channel``/``seq``/``ts``); ``realtime`` knows nothing of these
shapes (its seed-design ``WebSocketManager`` builds the same ones for callers of
that API). This module also decides the ``update_type``. An issue's state is a dict of wire values (``STATE_FIELDS``),
so a change is a diff of two states: ``{"status": ["unresolved", "resolved"]}``.

    issue_update  data: title, culprit, level, status, assignee, event_count,
                        last_seen, changes {field: [old, new]}
                        + resolved_by (user id or null) when update_type is "resolved"
                        + comment {id, author, body, created_at} when "commented"
    notification  kind "assigned", issue_id, data: title, by (user id or null)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from realtime.model_publishing import wire
from realtime.protocol import iso
from realtime.publisher import publish

ISSUE_UPDATE = "issue_update"
CREATED = "created"
UPDATED = "updated"
STATUS_CHANGED = "status_changed"
RESOLVED = "resolved"
ASSIGNED = "assigned"
COMMENTED = "commented"
DELETED = "deleted"
KIND_ASSIGNED = "assigned"
NOTIFICATION = "notification"

# Wire name -> model attribute. Everything a client may rely on (section 8) but
# the id and the timestamps every save touches (updated_at) or never changes.
STATE_FIELDS = {
    "title": "title",
    "culprit": "culprit",
    "level": "level",
    "status": "status",
    "assignee": "assignee_id",
    "fingerprint": "fingerprint",
    "event_count": "event_count",
    "first_seen": "first_seen",
    "last_seen": "last_seen",
}
# The fields repeated in every issue_update's data, so a client can draw the row.
DATA_FIELDS = ("title", "culprit", "level", "status", "assignee", "event_count", "last_seen")


def wire_state(values: dict[str, Any]) -> dict[str, Any]:
    """Model attribute values (by attname) as a state of wire values, as the saves' tracking
    (realtime.model_publishing) writes them, so the two diff alike; ids become strings."""
    state = {name: wire(values[attr]) for name, attr in STATE_FIELDS.items() if attr in values}
    if state.get("assignee") is not None:
        state["assignee"] = str(state["assignee"])
    return state


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    return {name: [before.get(name), value] for name, value in after.items() if before.get(name) != value}


def update_type_for(changes: dict[str, list]) -> str | None:
    """The most specific type of a change: resolved > status_changed > assigned > updated."""
    if not changes:
        return None
    if "status" in changes:
        return RESOLVED if changes["status"][1] == "resolved" else STATUS_CHANGED
    if "assignee" in changes:
        return ASSIGNED
    return UPDATED


def issue_data(state: dict[str, Any], changes: dict[str, list], **extra: Any) -> dict[str, Any]:
    data = {name: state.get(name) for name in DATA_FIELDS}
    data.update(extra)
    data["changes"] = changes
    return data


def comment_dict(comment_id: Any, author_id: Any, body: str, created_at: datetime) -> dict[str, Any]:
    return {
        "id": str(comment_id),
        "author": None if author_id is None else str(author_id),
        "body": body,
        "created_at": iso(created_at),
    }


def publish_issue_update(issue_id: Any, update_type: str, data: dict[str, Any]) -> list[dict]:
    """One issue_update on ``issues`` and the same on ``issue:<id>``."""
    message = {"type": ISSUE_UPDATE, "update_type": update_type, "issue_id": str(issue_id), "data": data}
    return [publish("issues", message), publish(f"issue:{issue_id}", message)]


def publish_assigned(assignee_id: Any, issue_id: Any, title: str, by: str | None) -> dict:
    message = {
        "type": NOTIFICATION,
        "kind": KIND_ASSIGNED,
        "issue_id": str(issue_id),
        "data": {"title": title, "by": by},
    }
    return publish(f"user:{assignee_id}", message)
