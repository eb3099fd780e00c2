"""``WebSocketManager``: the seed design's backend calls, on top of ``publish``.

    from realtime.manager import WebSocketManager
    await WebSocketManager().notify_issue_update(issue_id="123", update_type="resolved",
                                                 data={"resolved_by": "42", "title": "Issue Title"})
    await WebSocketManager().broadcast({"type": "announcement", "message": "System maintenance"},
                                       channel="global")

Each async method has a synchronous twin with a ``_sync`` suffix for views,
commands and signal receivers. Everything goes through ``publisher.publish``:
stored first, delivered after commit.
"""

from __future__ import annotations

from channels.db import database_sync_to_async

from .publisher import publish


class WebSocketManager:
    def broadcast_sync(self, message: dict, channel: str = "global") -> dict:
        return publish(channel, message)

    def notify_issue_update_sync(self, issue_id, update_type: str, data: dict | None = None) -> list[dict]:
        message = {"type": "issue_update", "update_type": update_type, "issue_id": str(issue_id), "data": data or {}}
        return [publish("issues", message), publish(f"issue:{issue_id}", message)]

    def notify_alert_sync(self, alert_id, data: dict, **fields) -> list[dict]:
        message = {"type": "alert_trigger", "alert_id": str(alert_id), **fields, "data": data}
        return [publish("alerts", message), publish(f"alert:{alert_id}", message)]

    def send_to_user_sync(self, user_id, message: dict) -> dict:
        return publish(f"user:{user_id}", {"type": "notification", **message})

    async def broadcast(self, message: dict, channel: str = "global") -> dict:
        return await database_sync_to_async(self.broadcast_sync)(message, channel)

    async def notify_issue_update(self, issue_id, update_type: str, data: dict | None = None) -> list[dict]:
        return await database_sync_to_async(self.notify_issue_update_sync)(issue_id, update_type, data)

    async def notify_alert(self, alert_id, data: dict, **fields) -> list[dict]:
        return await database_sync_to_async(self.notify_alert_sync)(alert_id, data, **fields)

    async def send_to_user(self, user_id, message: dict) -> dict:
        return await database_sync_to_async(self.send_to_user_sync)(user_id, message)
