"""The textbook consumer: group_add on subscribe, group_send to publish, send_json per recipient."""

from __future__ import annotations

from datetime import UTC, datetime

from channels.generic.websocket import AsyncJsonWebsocketConsumer

GROUP = "global"
state = {"seq": 0}


class BenchConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.accept()
        await self.send_json({"type": "connection", "protocol": 1})

    async def disconnect(self, code):
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type")
        if kind == "subscribe":
            await self.channel_layer.group_add(GROUP, self.channel_name)
            await self.send_json({"type": "subscribed", "channel": content["channel"], "seq": state["seq"]})
        elif kind == "publish":
            state["seq"] += 1
            ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            body = {"type": content["message"]["type"], "channel": GROUP, "seq": state["seq"], "ts": ts}
            body.update((k, v) for k, v in content["message"].items() if k != "type")
            await self.channel_layer.group_send(GROUP, {"type": "bench.message", "message": body})
        elif kind == "ping":
            await self.send_json({"type": "pong", "timestamp": content.get("timestamp")})

    async def bench_message(self, event):
        await self.send_json(event["message"])
