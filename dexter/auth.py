"""The API's JWT authentication, with its answer kept a few seconds per process.

SimpleJWT checks a token's signature and loads its user (one query) on every
request: on the two hot publish endpoints that was about a third of the
server CPU of a request (bench/README.md, "Third round"). A publisher (a
service account, a staff tool) sends the same token for minutes, so the
(token -> user) answer is kept for ``API_AUTH_CACHE_SECONDS`` (default 5),
never past the token's own expiry. A save or delete of any user, or of a
blacklisted or outstanding token, empties this process's cache at once, so a
user deactivated here loses access at once; the price, documented in the
README: a change made by *another* process (another server, a shell) takes
up to that long to be seen here (sockets are not affected; they authenticate
with ``realtime/auth.py``). 0 turns the cache off.

The cache is keyed by a hash of the token, holds at most ``MAX_ENTRIES``, and
is never logged.
"""

from __future__ import annotations

import hashlib
import threading
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme

from realtime.tokens import RevocableJWTAuthentication

MAX_ENTRIES = 10_000

_cache: dict[bytes, tuple[float, object, object]] = {}
_lock = threading.Lock()


def cache_seconds() -> float:
    return float(getattr(settings, "API_AUTH_CACHE_SECONDS", 5.0))


# The base refuses a revoked token session as well as deleted and inactive users (realtime/revocation.py).
class CachedJWTAuthentication(RevocableJWTAuthentication):
    def authenticate(self, request):
        ttl = cache_seconds()
        header = self.get_header(request)
        if ttl <= 0 or header is None:
            return super().authenticate(request)
        raw = self.get_raw_token(header)
        if raw is None:
            return None
        key = hashlib.blake2b(raw, digest_size=20).digest()
        now = time.monotonic()
        hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        token = self.get_validated_token(raw)
        user = self.get_user(token)
        left = float(token.get("exp", 0)) - time.time()
        with _lock:
            if len(_cache) >= MAX_ENTRIES:
                for k in [k for k, v in _cache.items() if v[0] <= now] or list(_cache):
                    del _cache[k]
            _cache[key] = (now + min(ttl, left), user, token)
        return user, token


def clear() -> None:
    """Forget every cached answer (tests; a deployment that must revoke at once can call it)."""
    with _lock:
        _cache.clear()


# What can revoke a cached answer: the users and SimpleJWT's blacklist (if installed).
REVOKING = {settings.AUTH_USER_MODEL.lower(), "token_blacklist.blacklistedtoken", "token_blacklist.outstandingtoken"}


def _on_change(sender, **kwargs) -> None:
    if _cache and sender._meta.label_lower in REVOKING:
        clear()


post_save.connect(_on_change, dispatch_uid="dexter.auth.revoke_on_save")
post_delete.connect(_on_change, dispatch_uid="dexter.auth.revoke_on_delete")


class CachedJWTScheme(SimpleJWTScheme):
    """The OpenAPI security scheme of SimpleJWT for the cached class (the same bearer token)."""

    target_class = "dexter.auth.CachedJWTAuthentication"
