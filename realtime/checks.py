"""System checks of the real-time settings: one line naming the setting and the bad value.

Registered from ``RealtimeConfig.ready()``; Django runs them on ``manage.py
check``, ``migrate`` and ``runserver``, and ``manage.py runrealtime`` runs them
before it serves, so a bad value stops the start instead of failing the first
connection with a traceback.
"""

from __future__ import annotations

from django.core.checks import Error

from . import conf


def check_settings(app_configs=None, **kwargs) -> list[Error]:
    return [Error(line, id="realtime.E001") for line in conf.problems()]
