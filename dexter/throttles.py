"""Brute-force bounds of ``POST /api/auth/token/``: per username and per client address (HTTP 429).

Both count every attempt, right or wrong, in Django's cache (``CACHES``: this
process's memory by default, shared through Redis when ``REDIS_URL`` is set,
so several server processes share one budget). The per-username budget stops
an attacker who spreads over many addresses; the per-address one stops one
address trying many usernames. The rates are read per request, so a test or a
deployment changes them with a setting (README "Configuration").
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

DEFAULT_RATE_PER_USERNAME = "10/min"
DEFAULT_RATE_PER_ADDRESS = "30/min"


class _SettingRateThrottle(SimpleRateThrottle):
    setting: str
    default: str

    def get_rate(self) -> str | None:
        return getattr(settings, self.setting, self.default) or None

    def allow_request(self, request, view) -> bool:
        # The rate is read now, not when the class was first used.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class TokenUsernameThrottle(_SettingRateThrottle):
    scope = "auth_username"
    setting = "AUTH_TOKEN_RATE_PER_USERNAME"
    default = DEFAULT_RATE_PER_USERNAME

    def get_cache_key(self, request, view) -> str | None:
        data = request.data if isinstance(request.data, dict) else {}
        username = data.get("username")
        if not isinstance(username, str) or not username:
            return None  # the serializer refuses it; the address budget still counts it
        # Hashed: the key is bounded whatever the username's length, and no username sits in the cache.
        digest = hashlib.sha256(username.casefold().encode("utf-8", "replace")).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": digest}


class TokenAddressThrottle(_SettingRateThrottle):
    scope = "auth_address"
    setting = "AUTH_TOKEN_RATE_PER_ADDRESS"
    default = DEFAULT_RATE_PER_ADDRESS

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
