"""Who may subscribe to (or read the history of) which channel: decided here only.

The socket, the REST history endpoint and the presence endpoint all call
``check(user, channel)``. A deployment replaces the rules by pointing
REALTIME_CHANNEL_POLICY at another callable with ``default_policy``'s signature
(it may call ``default_policy`` for what it does not override). The default
reads what each kind registered (realtime.registry): domain apps register
theirs from their ``AppConfig.ready()``, so this module never imports them.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from . import conf, registry
from .protocol import (
    E_FORBIDDEN,
    E_HISTORY_UNAVAILABLE,
    E_NOT_FOUND,
    E_UNKNOWN_CHANNEL,
    Channel,
    ProtocolError,
    parse_channel,
)


def _authenticated(user: Any) -> bool:
    return user is not None and bool(getattr(user, "is_authenticated", False))


def default_policy(user: Any, channel: Channel) -> str | None:
    """docs/protocol.md section 2 as registered. Returns None to allow, else an error code.

    In this order, so that a client learns only what it may: anonymous users
    get ``forbidden`` unless the kind admits them; then ``not_found`` for an
    object that does not exist; then the kind's own ``can_subscribe``.
    """
    entry = registry.get(channel.kind)
    if entry is None:
        return E_UNKNOWN_CHANNEL
    if not entry.anonymous and not _authenticated(user):
        return E_FORBIDDEN
    if channel.object_id is not None and entry.exists is not None and not entry.exists(channel.object_id):
        return E_NOT_FOUND
    if entry.can_subscribe is not None and not entry.can_subscribe(user, channel.object_id):
        return E_FORBIDDEN
    return None


def staff_only(user: Any, object_id: str | None) -> bool:
    """``ops``: the operations console's samples are for staff."""
    return bool(getattr(user, "is_staff", False))


def own_user_channel(user: Any, object_id: str | None) -> bool:
    """``user:<id>`` is for that user only."""
    return _authenticated(user) and str(user.pk) == object_id


_MESSAGES = {
    E_NOT_FOUND: "no such object",
    E_UNKNOWN_CHANNEL: "unknown channel",
    E_FORBIDDEN: "not allowed on this channel",
}


def check(user: Any, channel_name: str) -> Channel:
    """Parse ``channel_name`` and apply the configured policy; raises ProtocolError."""
    channel = parse_channel(channel_name)
    policy = import_string(conf.get("REALTIME_CHANNEL_POLICY"))
    code = policy(user, channel)
    if code is not None:
        raise ProtocolError(code, _MESSAGES.get(code, "not allowed on this channel"), channel=channel.name)
    return channel


def check_history(channel: Channel) -> None:
    """Raise ``history_unavailable`` for a kind registered without history (or listed
    in REALTIME_NO_HISTORY, the deployment's override); call it after ``check``."""
    entry = registry.get(channel.kind)
    if entry is None or not entry.history or channel.kind in conf.get("REALTIME_NO_HISTORY"):
        raise ProtocolError(E_HISTORY_UNAVAILABLE, "no history is kept for this channel", channel=channel.name)
