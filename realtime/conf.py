"""Real-time settings: the one place they are read, with their defaults and their checks.

A setting is taken from the Django settings when the project sets it there,
else from the environment variable of the same name, else from ``DEFAULTS``.
It is read when asked (never at import time) and checked against its type
(the type of its default) and bounds; a bad value is a one-line error naming
the setting and the value: at start-up, as a Django system check
(``realtime.E001``, run by ``manage.py check``, ``migrate`` and
``runrealtime``), and as ``ImproperlyConfigured`` if it is read anyway.

``env`` reads a project's own settings from the environment with the same
parsing (Dexter's settings.py uses it); a bad value there is recorded for the
same system check and the default is used meanwhile, so the check can say
so in one line instead of a traceback at import.

Every limit of docs/protocol.md section 9 is one of these; README.md has the table.
"""

from __future__ import annotations

import builtins
import math
import os
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS = {
    "WEBSOCKET_ENABLED": True,
    "WEBSOCKET_HEARTBEAT_INTERVAL": 30.0,
    "WEBSOCKET_MAX_CONNECTIONS": 1000,
    "WEBSOCKET_MAX_SUBSCRIPTIONS": 100,
    "WEBSOCKET_MAX_MESSAGE_SIZE": 65536,
    "WEBSOCKET_ALLOWED_ORIGINS": [],
    "WEBSOCKET_CONNECT_RATE": 60,
    "WEBSOCKET_MESSAGE_RATE": 20.0,
    "WEBSOCKET_PRESENCE_GRACE": 5.0,
    # A client that lets this many frames pile up unsent reads too slowly (4500).
    "WEBSOCKET_SEND_QUEUE_LIMIT": 1000,
    # Bytes written to one connection that its client has not read yet; past it, 4500.
    "WEBSOCKET_SEND_BUFFER_LIMIT": 1048576,
    # Server-sent events (GET /sse/): a ``: ping`` comment this often keeps proxies
    # from closing an idle stream; ``retry:`` tells a browser how soon to reconnect (ms).
    "REALTIME_SSE_PING_INTERVAL": 15.0,
    "REALTIME_SSE_RETRY": 2000,
    # How long ?batch=1 connections gather publications before one frame goes out.
    "WEBSOCKET_BATCH_TICK": 0.02,
    # permessage-deflate under ``manage.py runrealtime`` (bench/README.md: off costs less).
    "WEBSOCKET_COMPRESSION": False,
    # Bytes of one encoded publication; the HTTP API answers 400 for a write that would make a larger one.
    "REALTIME_MAX_PUBLICATION_SIZE": 65536,
    # Seconds between each server's check of its sockets' users and token sessions (revocation.py).
    "REALTIME_REVOCATION_INTERVAL": 5.0,
    "REALTIME_HISTORY_SIZE": 1000,
    "REALTIME_HISTORY_TTL": 86400,
    "REALTIME_POLL_INTERVAL": 0.25,
    # Wake other processes' servers at commit (PostgreSQL NOTIFY, or a loopback
    # datagram on SQLite; realtime/doorbell.py): "auto", or "off" for the poller alone.
    "REALTIME_DOORBELL": "auto",
    # Channel kinds (``presence``, ``user``, ...) whose history is not served.
    "REALTIME_NO_HISTORY": [],
    "REALTIME_CHANNEL_POLICY": "realtime.policy.default_policy",
    # DRF rate of POST /api/realtime/broadcast/ and /notify/ per user, unless the
    # project's DEFAULT_THROTTLE_RATES has a "realtime_publish" entry.
    "REALTIME_PUBLISH_THROTTLE": "600/min",
    # Move what exists when the hub starts (Django, every module) out of the
    # garbage collector's sight, so a full collection scans only what came
    # later: pauses of every socket of 66-102 ms became 22-43 ms (bench/README.md).
    "REALTIME_GC_FREEZE": True,
    # The longest wait between tries to reach an unreachable channel layer (realtime/outage.py).
    "REALTIME_LAYER_RETRY_MAX": 30.0,
    # Seconds between the samples each server publishes on `ops` while /ops/ is open (realtime/ops.py).
    "REALTIME_OPS_INTERVAL": 2.0,
}


# Numbers are >= 0; these must be > 0, since 0 breaks the server: a heartbeat
# interval of 0 closes every socket at once, a limit of 0 refuses everything.
POSITIVE = frozenset(
    {
        "WEBSOCKET_HEARTBEAT_INTERVAL",
        "WEBSOCKET_MAX_CONNECTIONS",
        "WEBSOCKET_MAX_SUBSCRIPTIONS",
        "WEBSOCKET_MAX_MESSAGE_SIZE",
        "WEBSOCKET_CONNECT_RATE",
        "WEBSOCKET_MESSAGE_RATE",
        "WEBSOCKET_SEND_QUEUE_LIMIT",
        "WEBSOCKET_SEND_BUFFER_LIMIT",
        "REALTIME_SSE_PING_INTERVAL",
        "REALTIME_LAYER_RETRY_MAX",
        "REALTIME_OPS_INTERVAL",
        "WEBSOCKET_BATCH_TICK",
        "REALTIME_MAX_PUBLICATION_SIZE",
        "REALTIME_HISTORY_SIZE",
        "REALTIME_HISTORY_TTL",
        "REALTIME_POLL_INTERVAL",
        "REALTIME_REVOCATION_INTERVAL",
    }
)
# Upper bounds past which a value cannot take effect: autobahn fails any
# connection whose message passes 1 MiB before the application sees it.
MAXIMUM = {"WEBSOCKET_MAX_MESSAGE_SIZE": 1048576}

# DRF rates: a number, a slash, a period (s, m, h or d, or a word starting with one).
RATES = frozenset({"REALTIME_PUBLISH_THROTTLE"})
RATE_RE = re.compile(r"[0-9]+/[smhd][a-z]*")

# Settings that take one of a few words.
CHOICES = {"REALTIME_DOORBELL": ("auto", "off", "0", "false", "no")}

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class InvalidSetting(ImproperlyConfigured):
    """A setting whose value cannot be used; ``str()`` is the one-line message."""


def parse_text(kind: type, text: str) -> Any:
    """Parse the text of an environment variable as ``kind``; raises ValueError(why)."""
    text = text.strip()
    if kind is bool:
        word = text.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError("is not a boolean (true/false, 1/0, yes/no, on/off)")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("is not an integer") from None
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError("is not a number") from None
        if not math.isfinite(number):
            raise ValueError("is not a finite number")
        return number
    if kind is list:
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def coerce(kind: type, value: Any) -> Any:
    """A value of ``kind`` from a Django setting (or parsed text); raises ValueError(why)."""
    if isinstance(value, str) and kind is not str:
        return parse_text(kind, value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError("is not a boolean")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("is not an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError("is not a number")
        return float(value)
    if kind is list:
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise ValueError("is not a list of strings")
        return list(value)
    if not isinstance(value, str):
        raise ValueError("is not a string")
    return value


def _check_bounds(name: str, value: Any) -> None:
    if name in RATES and not RATE_RE.fullmatch(str(value)):
        raise ValueError("is not a rate such as 600/min")
    if name in CHOICES and str(value).lower() not in CHOICES[name]:
        raise ValueError("is not one of " + ", ".join(CHOICES[name]))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if name in POSITIVE and value <= 0:
        raise ValueError("must be greater than 0")
    if value < 0:
        raise ValueError("must not be negative")
    if name in MAXIMUM and value > MAXIMUM[name]:
        raise ValueError(f"must be at most {MAXIMUM[name]}")


def _raw(name: str) -> tuple[Any, str]:
    """The configured value of ``name`` and where it came from."""
    if hasattr(settings, name):
        return getattr(settings, name), "settings"
    text = os.environ.get(name)
    if text is not None and text.strip() != "":
        return text, "environment"
    return DEFAULTS[name], "default"


def _resolve(name: str) -> Any:
    raw, source = _raw(name)
    if source == "default":
        return raw
    try:
        value = coerce(type(DEFAULTS[name]), raw)
        _check_bounds(name, value)
    except ValueError as exc:
        where = " (from the environment)" if source == "environment" else ""
        raise InvalidSetting(f"{name}={raw!r}{where} {exc}") from None
    return value


# Parsed values by (name, raw value): a frame handler reads a limit per frame,
# and parsing it again each time would be waste. Lists are not cached (not hashable).
_cache: dict[tuple[str, type, Any], Any] = {}


def get(name: str) -> Any:
    """The value of real-time setting ``name``; raises InvalidSetting (one line) when it is bad."""
    raw, _source = _raw(name)
    try:
        key = (name, type(raw), raw)  # the type too: True == 1 as a dict key
        return _cache[key]
    except KeyError:
        value = _resolve(name)
        if len(_cache) < 1024:  # bounded: tests change settings often
            _cache[key] = value
        return value
    except TypeError:  # an unhashable raw value (a list)
        return _resolve(name)


def problems() -> list[str]:
    """One line for every real-time setting, and every project setting read with ``env``,
    whose value is bad. Empty when all is well."""
    found = []
    for name in DEFAULTS:
        try:
            _resolve(name)
        except InvalidSetting as exc:
            found.append(str(exc))
    policy = get_policy_path()
    if policy is not None:
        from django.utils.module_loading import import_string

        try:
            if not callable(import_string(policy)):
                found.append(f"REALTIME_CHANNEL_POLICY={policy!r} is not a callable")
        except ImportError as exc:
            found.append(f"REALTIME_CHANNEL_POLICY={policy!r} cannot be imported ({exc})")
    found.extend(env.problems)
    return found


def get_policy_path() -> str | None:
    try:
        return get("REALTIME_CHANNEL_POLICY")
    except InvalidSetting:
        return None


class EnvReader:
    """Read a project's settings from the environment with the parsing of ``get``.

    ``env.int("DATABASE_CONN_MAX_AGE", 60)``: the default when unset or empty;
    when bad, the default too, and the bad value is kept for the system check.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def _read(self, kind: type, name: builtins.str, default: Any, positive: builtins.bool = False) -> Any:
        text = os.environ.get(name)
        if text is None or text.strip() == "":
            return default
        try:
            value = parse_text(kind, text)
            if positive and value <= 0:
                raise ValueError("must be greater than 0")
        except ValueError as exc:
            line = f"{name}={text!r} (from the environment) {exc}"
            if line not in self.problems:
                self.problems.append(line)
            return default
        return value

    # Named after the types they read (``env.int``), so the types are spelled builtins.* here.
    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        return self._read(builtins.bool, name, default)

    def int(self, name: builtins.str, default: builtins.int, *, positive: builtins.bool = False) -> builtins.int:
        return self._read(builtins.int, name, default, positive)

    def float(self, name: builtins.str, default: builtins.float, *, positive: builtins.bool = False) -> builtins.float:
        return self._read(builtins.float, name, default, positive)

    def list(self, name: builtins.str, default: builtins.list[builtins.str]) -> builtins.list[builtins.str]:
        return self._read(builtins.list, name, default)

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str | None:
        return self._read(builtins.str, name, default)


env = EnvReader()


def allowed_origins() -> list[str]:
    """Origins a browser may connect from; by default the hosts of ALLOWED_HOSTS."""
    configured = get("WEBSOCKET_ALLOWED_ORIGINS")
    if configured:
        return list(configured)
    if not settings.ALLOWED_HOSTS and settings.DEBUG:
        # What Django itself serves with DEBUG and no ALLOWED_HOSTS (a fresh startproject).
        return [".localhost", "127.0.0.1", "[::1]"]
    return list(settings.ALLOWED_HOSTS)
