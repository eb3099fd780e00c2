"""Adds the conformance echo route to the project's WebSocket routes (see settings.py)."""

from django.apps import AppConfig


class ConformanceConfig(AppConfig):
    name = "tests.conformance"
    label = "conformance"

    def ready(self) -> None:
        from django.urls import re_path

        from realtime.routing import websocket_urlpatterns

        from .echo import EchoConsumer

        websocket_urlpatterns.append(re_path(r"^/?echo/?$", EchoConsumer.as_asgi()))
