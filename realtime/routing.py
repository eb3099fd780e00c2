from django.urls import re_path

from .consumers import RealtimeConsumer

# The client id is validated by the consumer (a 403 for anything outside the
# contract), so the route takes any segment and the trailing slash is optional.
websocket_urlpatterns = [
    re_path(r"^ws/(?P<client_id>[^/]*)/?$", RealtimeConsumer.as_asgi()),
]
