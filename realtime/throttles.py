"""The throttle of the publishing endpoints, with a working default rate.

DRF's ``ScopedRateThrottle`` answers 500 (ImproperlyConfigured) when the
project's ``DEFAULT_THROTTLE_RATES`` lacks the view's scope, so a project that
installs ``realtime`` would have to configure it first. This one takes the
project's ``realtime_publish`` rate when it has one, else
``REALTIME_PUBLISH_THROTTLE`` (realtime/conf.py, default 600/min).
"""

from __future__ import annotations

from rest_framework.throttling import ScopedRateThrottle

from . import conf

SCOPE = "realtime_publish"


class PublishThrottle(ScopedRateThrottle):
    def get_rate(self) -> str | None:
        if self.scope == SCOPE and SCOPE not in self.THROTTLE_RATES:
            return conf.get("REALTIME_PUBLISH_THROTTLE")
        return super().get_rate()
