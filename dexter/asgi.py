"""ASGI entry point: HTTP through Django, WebSockets through the realtime consumer.

Serve it with ``daphne dexter.asgi:application`` (what ``make run`` does).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dexter.settings")

from dexter.http import get_http_application  # noqa: E402

# Django's stock ASGI handler, run on a pool of long-lived threads (dexter/http.py).
django_asgi_app = get_http_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
