"""The conformance target: every message back as it came, text as text, binary as binary.

What the Autobahn fuzzing client checks is the WebSocket layer under the
application (daphne, autobahn, Twisted, our ``RealtimeServer``), so the
application on top is the plainest echo Channels allows.
"""

from channels.generic.websocket import AsyncWebsocketConsumer


class EchoConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None) -> None:
        if text_data is not None:
            await self.send(text_data=text_data)
        else:
            await self.send(bytes_data=bytes_data)
