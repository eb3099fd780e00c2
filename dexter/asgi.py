"""ASGI entry point: HTTP through Django, WebSockets through the realtime consumer.

Serve it with ``python manage.py runrealtime`` (what ``make run`` does), or with
plain ``daphne dexter.asgi:application``.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dexter.settings")

from dexter.http import get_http_application  # noqa: E402

# Django's stock ASGI handler, run on a pool of long-lived threads (dexter/http.py).
django_asgi_app = get_http_application()

from realtime.routing import protocol_router  # noqa: E402

# Channels' ProtocolTypeRouter + URLRouter, as plain functions (realtime/routing.py).
application = protocol_router(django_asgi_app)
