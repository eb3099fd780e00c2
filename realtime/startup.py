"""The one line a server prints when it starts serving: where, and on what it runs.

daphne's own "Listening on TCP address" is an INFO line of a logger the
project keeps at WARNING; this one is on ``realtime`` (INFO by default), so
``make run`` ends on the URL to open. It names the database and the channel
layer, never a password: credentials are cut out of both.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger("realtime.server")


def database_text() -> str:
    db = settings.DATABASES["default"]
    vendor = db["ENGINE"].rsplit(".", 1)[-1]
    if vendor == "sqlite3":
        name = Path(str(db["NAME"]))
        try:
            name = name.relative_to(Path.cwd())
        except ValueError:
            pass
        return f"SQLite {name}"
    label = {"postgresql": "PostgreSQL", "mysql": "MySQL"}.get(vendor, vendor)
    where = f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 'default port'}"
    return f"{label} {db.get('NAME')} at {where}"


def channel_layer_text() -> str:
    layer = getattr(settings, "CHANNEL_LAYERS", {}).get("default", {})  # a project may set none
    backend = layer.get("BACKEND", "")
    if "redis" in backend.lower():
        hosts = layer.get("CONFIG", {}).get("hosts") or ["localhost:6379"]
        places = []
        for host in hosts:
            address = host.get("address", "") if isinstance(host, dict) else host
            if isinstance(address, (tuple, list)):
                places.append(f"{address[0]}:{address[1]}")
            else:
                parts = urlsplit(address if "://" in str(address) else f"redis://{address}")
                places.append(f"{parts.hostname}:{parts.port or 6379}")  # hostname: no user or password
        return "Redis at " + ", ".join(places)
    if backend.endswith("InMemoryChannelLayer"):
        return "in-process (this process only; set REDIS_URL to run several)"
    return backend or "none"


def log_serving(host: str, port: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    logger.info(
        "Dexter is serving on http://%s:%s/ (database: %s; channel layer: %s)",
        shown,
        port,
        database_text(),
        channel_layer_text(),
    )
