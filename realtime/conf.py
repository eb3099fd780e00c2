"""Real-time settings: the one place they are read, with their defaults and their checks.

A setting is taken from the Django settings when the project sets it there,
else from the environment variable of the same name, else from ``DEFAULTS``
(``realtime/conf_table.py``, with the bounds). It is read when asked (never at
import time) and checked against its type (the type of its default) and
bounds; a bad value is a one-line error naming the setting and the value: at
start-up, as a Django system check (``realtime.E001``, run by
``manage.py check``, ``migrate`` and ``runrealtime``), and as
``ImproperlyConfigured`` if it is read anyway.

``env`` (``realtime/conf_values.py``) reads a project's own settings from the
environment with the same parsing; its bad values are reported by the same check.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from realtime.conf_table import DEFAULTS, check_bounds
from realtime.conf_values import EnvReader, coerce, env, parse_text

# What the rest of realtime and projects use as conf.X.
__all__ = [
    "DEFAULTS",
    "EnvReader",
    "InvalidSetting",
    "allowed_origins",
    "coerce",
    "env",
    "get",
    "get_policy_path",
    "parse_text",
    "problems",
]


class InvalidSetting(ImproperlyConfigured):
    """A setting whose value cannot be used; ``str()`` is the one-line message."""


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
        check_bounds(name, value)
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


def allowed_origins() -> list[str]:
    """Origins a browser may connect from; by default the hosts of ALLOWED_HOSTS."""
    configured = get("WEBSOCKET_ALLOWED_ORIGINS")
    if configured:
        return list(configured)
    if not settings.ALLOWED_HOSTS and settings.DEBUG:
        # What Django itself serves with DEBUG and no ALLOWED_HOSTS (a fresh startproject).
        return [".localhost", "127.0.0.1", "[::1]"]
    return list(settings.ALLOWED_HOSTS)
