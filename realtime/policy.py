"""Who may subscribe to (or read the history of) which channel: decided here only.

The socket, the REST history endpoint and the presence endpoint all call
``check(user, channel)``. A deployment replaces the rules by pointing
REALTIME_CHANNEL_POLICY at another callable with ``default_policy``'s signature.
Domain apps register their object channels (``issue:<id>``, ``alert:<id>``)
from their ``AppConfig.ready()``, so this module never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import import_string

from . import conf
from .protocol import E_FORBIDDEN, E_NOT_FOUND, Channel, ProtocolError, parse_channel

PUBLIC_CHANNELS = frozenset({"global"})


@dataclass(frozen=True)
class ObjectChannel:
    exists: Callable[[str], bool]
    # May this user see this object? Defaults to any authenticated user.
    can_view: Callable[[Any, str], bool] | None = None


_object_channels: dict[str, ObjectChannel] = {}


def register_object_channel(kind: str, exists: Callable[[str], bool], can_view=None) -> None:
    """Called from a domain app's ready(): ``issue:<id>`` needs Issue <id> to exist."""
    _object_channels[kind] = ObjectChannel(exists, can_view)


def default_policy(user: Any, channel: Channel) -> str | None:
    """The table of docs/protocol.md section 2. Returns None to allow, else an error code."""
    if channel.name in PUBLIC_CHANNELS:
        return None
    if user is None or not user.is_authenticated:
        return E_FORBIDDEN
    if channel.kind == "user":
        return None if str(user.pk) == channel.object_id else E_FORBIDDEN
    registered = _object_channels.get(channel.kind)
    if channel.object_id is not None and registered is not None:
        if not registered.exists(channel.object_id):
            return E_NOT_FOUND
        if registered.can_view is not None and not registered.can_view(user, channel.object_id):
            return E_FORBIDDEN
    return None


def check(user: Any, channel_name: str) -> Channel:
    """Parse ``channel_name`` and apply the configured policy; raises ProtocolError."""
    channel = parse_channel(channel_name)
    policy = import_string(conf.get("REALTIME_CHANNEL_POLICY"))
    code = policy(user, channel)
    if code is not None:
        message = "no such object" if code == E_NOT_FOUND else "not allowed on this channel"
        raise ProtocolError(code, message, channel=channel.name)
    return channel
