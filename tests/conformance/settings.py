"""Settings for the Autobahn conformance run: Dexter's own, plus an echo WebSocket route.

``DJANGO_SETTINGS_MODULE=tests.conformance.settings manage.py runrealtime`` serves
everything ``dexter.settings`` does, and ``/echo/`` as well: an app in
INSTALLED_APPS adds the route to ``realtime.routing.websocket_urlpatterns`` when
Django is ready (routing cannot be imported from a settings module).
"""

from dexter.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.conformance.apps.ConformanceConfig"]  # noqa: F405
