"""Per-channel order and dedup by (channel, seq) of what the client prints, with no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

# The server caps history requests at 1000 messages (section 3).
MAX_HISTORY_LIMIT = 1000


@dataclass
class ChannelTracker:
    """Per-channel order and dedup by (channel, seq), with no I/O.

    ``accept`` returns the messages to emit now, in order; a message past a gap is
    held until ``fill`` brings the missing ones from ``history``, or ``skip_gap``
    gives up on them.
    """

    last: dict[str, int] = field(default_factory=dict)
    held: dict[str, dict[int, dict]] = field(default_factory=dict)

    def subscribed(self, channel: str, since: int | None, latest: int, recovered: bool) -> bool:
        """Record a ``subscribed`` reply; True when the missed messages are gone (reset)."""
        if since is None:
            self.last[channel] = latest
            return False
        if not recovered or latest < since:
            self.last[channel] = latest
            return True
        return False

    def accept(self, message: dict) -> list[dict]:
        channel, seq = message["channel"], message["seq"]
        last = self.last.get(channel)
        if last is not None and seq <= last:
            return []
        if last is not None and seq > last + 1:
            self.held.setdefault(channel, {})[seq] = message
            return []
        self.last[channel] = seq
        return [message, *self._drain(channel)]

    def gap(self, channel: str) -> tuple[int, int] | None:
        """(since, limit) of the history request that fills the channel's gap, if any."""
        held = self.held.get(channel)
        if not held:
            return None
        last = self.last.get(channel, 0)
        return last, min(min(held) - last - 1, MAX_HISTORY_LIMIT)

    def fill(self, channel: str, messages: list[dict]) -> list[dict]:
        last = self.last.get(channel, 0)
        held = self.held.setdefault(channel, {})
        for message in messages:
            if message.get("channel") == channel and isinstance(message.get("seq"), int) and message["seq"] > last:
                held[message["seq"]] = message
        return self._drain(channel)

    def skip_gap(self, channel: str) -> list[dict]:
        held = self.held.get(channel)
        if not held:
            return []
        self.last[channel] = min(held) - 1
        return self._drain(channel)

    def forget_held(self) -> None:
        """Drop held messages (on reconnect, the resubscription with ``since`` replays them)."""
        self.held.clear()

    def _drain(self, channel: str) -> list[dict]:
        held = self.held.get(channel, {})
        out = []
        while held:
            last = self.last[channel]
            for seq in [s for s in held if s <= last]:
                del held[seq]
            nxt = held.pop(last + 1, None)
            if nxt is None:
                break
            self.last[channel] = nxt["seq"]
            out.append(nxt)
        if not held:
            self.held.pop(channel, None)
        return out
