"""Channel names (docs/protocol.md section 2): ``issue:12`` parsed against the registry.

The rule a caller must know: ids are canonical, so ``issue:0001`` is
``unknown_channel``, never a second name of ``issue:1`` (realtime.registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import registry
from .codes import E_INVALID_MESSAGE, E_UNKNOWN_CHANNEL, ProtocolError


@dataclass(frozen=True)
class Channel:
    """A parsed protocol channel: ``issue:12`` is Channel("issue", "12")."""

    kind: str
    object_id: str | None = None

    @property
    def name(self) -> str:
        return self.kind if self.object_id is None else f"{self.kind}:{self.object_id}"


def parse_channel(name: Any) -> Channel:
    """Parse a channel name of a registered kind (realtime.registry), or raise
    ProtocolError(unknown_channel). Ids are canonical: ``issue:0001`` is unknown."""
    if not isinstance(name, str) or not name:
        raise ProtocolError(E_INVALID_MESSAGE, "channel must be a non-empty string")
    found = registry.lookup(name)
    if found is None:
        shown = name[: registry.MAX_NAME_LENGTH]
        raise ProtocolError(E_UNKNOWN_CHANNEL, f"unknown channel {shown!r}", channel=shown)
    entry, object_id = found
    return Channel(entry.kind, object_id)
