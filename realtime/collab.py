"""The socket's side of channel presence and signals (docs/protocol.md sections 10 and 11).

Mixed into the consumer so ``consumers.py`` only names the hooks; the rows live
in ``channel_presence`` and the per-process state in ``channel_tracker``.
Who may subscribe is ``policy.check``'s; whether a kind has presence and
signals is the channel registry's (``channel_presence.has_presence`` / ``has_signals``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import protocol
from .channel_presence import has_presence, has_signals
from .channel_tracker import get_tracker
from .protocol import ClientMessage, ProtocolError

if TYPE_CHECKING:
    from .hub import Hub
    from .outbox import Subscription


class CollabMixin:
    # What the consumer this is mixed into provides (set in its connect()).
    hub: Hub
    user_id: str | None
    subs: dict[str, Subscription]

    if TYPE_CHECKING:

        async def send_message(self, message: dict) -> None: ...

    def _check_presence_kind(self, msg: ClientMessage) -> None:
        """Before a ``subscribe`` with ``presence: true`` does anything."""
        kind = protocol.parse_channel(msg.channel).kind
        if not has_presence(kind):
            raise ProtocolError(
                protocol.E_INVALID_MESSAGE, "this channel has no channel presence", ref=msg.ref, channel=msg.channel
            )
        if self.user_id is None:
            raise ProtocolError(protocol.E_FORBIDDEN, "sign in to join a channel's presence", ref=msg.ref)

    def _recorded_subscriptions(self) -> list[str]:
        """The channels the ``Connection`` row lists: those held without channel presence."""
        tracker = get_tracker(self.hub)
        return sorted(name for name in self.subs if not tracker.holds(self, name))

    async def _presence_join(self, name: str) -> None:
        tracker = get_tracker(self.hub)
        if not tracker.holds(self, name):
            await tracker.join(self, name)

    async def _presence_leave(self, name: str) -> None:
        await get_tracker(self.hub).leave(self, name)

    async def _presence_release(self) -> None:
        """Every way the connection ends: its channel presence starts the reload grace."""
        await get_tracker(self.hub).connection_ended(self)

    async def _channel_activity(self, msg: ClientMessage) -> None:
        """``presence`` with ``channel``: this connection's activity on a channel it holds with presence."""
        name = protocol.parse_channel(msg.channel).name
        tracker = get_tracker(self.hub)
        if not await tracker.set_activity(self, name, msg.activity):
            raise ProtocolError(
                protocol.E_INVALID_MESSAGE,
                "this connection holds no presence on this channel",
                ref=msg.ref,
                channel=name,
            )
        activity = msg.activity or "viewing"
        await self.send_message(
            protocol.with_ref({"type": "presence_ack", "channel": name, "activity": activity}, msg.ref)
        )
        await tracker.changed(name)

    async def on_signal(self, msg: ClientMessage) -> None:
        """Relay to the channel's other subscribers: never stored, never echoed (section 11)."""
        name, event = msg.channel, msg.event
        if name is None or event is None:  # protocol.parse refuses such a frame before it comes here
            raise ProtocolError(protocol.E_INVALID_MESSAGE, "a signal needs channel and event", ref=msg.ref)
        try:
            kind = protocol.parse_channel(name).kind
        except ProtocolError as exc:
            exc.ref = msg.ref
            raise
        if self.user_id is None:
            raise ProtocolError(protocol.E_FORBIDDEN, "sign in to send signals", ref=msg.ref, channel=name)
        if name not in self.subs or not has_signals(kind):
            raise ProtocolError(
                protocol.E_FORBIDDEN, "signals go only to a channel this connection holds", ref=msg.ref, channel=name
            )
        await get_tracker(self.hub).relay_signal(self, name, event, msg.data)
