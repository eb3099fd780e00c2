"""Dexter's real-time layer. ``realtime.publish`` and ``realtime.PublicationTooLarge``
are its publishing entry points (loaded on first use: importing the package must
not import models before Django's apps are ready)."""


def __getattr__(name: str):
    if name in ("publish", "PublicationTooLarge"):
        from . import publisher

        return getattr(publisher, name)
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")
