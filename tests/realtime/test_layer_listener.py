"""The layer listener outlives a message its handler cannot take.

One bad message from another process (an older version's shape, a handler's
bug) must not end this process's listener: every later publication would then
reach its sockets only through the poller, and control messages (closes,
revocations, takeovers) never.
"""

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer

from realtime.fanout import FANOUT_GROUP
from realtime.interest import Interest
from realtime.layer_listener import LayerListener


@pytest.mark.asyncio
async def test_a_message_whose_handler_raises_is_logged_and_the_next_one_is_handled(caplog):
    layer = InMemoryChannelLayer()
    handled: list[dict] = []

    async def dispatch(message: dict) -> None:
        if "channel" not in message:
            raise KeyError("channel")
        handled.append(message)

    interest = Interest(layer, on_joined=lambda channel: None, on_error=lambda exc: 0.1)
    listener = LayerListener(layer, interest, subscribed=(), dispatch=dispatch)
    task = asyncio.ensure_future(listener.run())
    try:
        async with asyncio.timeout(5):
            while not layer.groups.get(FANOUT_GROUP):
                await asyncio.sleep(0.01)
            await layer.group_send(FANOUT_GROUP, {"type": "rt.publish"})
            await layer.group_send(FANOUT_GROUP, {"type": "rt.publish", "channel": "global"})
            while not handled:
                await asyncio.sleep(0.01)
        assert handled == [{"type": "rt.publish", "channel": "global"}]
        assert not task.done()
        assert "rt.publish" in caplog.text and "KeyError" in caplog.text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        interest.disconnected()
