"""Django's Redis cache that keeps counting in this process's memory while Redis is down.

The cache holds the throttles' counters (token brute force, publish and event
rates). Redis is shared so that several server processes share one budget, but
it is not the truth of anything: with Redis down the API must go on answering
(publications are stored in the database and the poller delivers them), so a
cache error falls back to a per-process memory cache for the call instead of
turning every throttled request into a 500. One warning is logged per outage.
"""

from __future__ import annotations

import logging

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)


class RedisCacheWithLocalFallback(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._local = LocMemCache(f"fallback-{server}", {})
        self._down = False

    def _call(self, name, *args, **kwargs):
        try:
            result = getattr(super(), name)(*args, **kwargs)
        except Exception as exc:  # redis.exceptions.ConnectionError, TimeoutError, ...
            if not self._down:
                self._down = True
                logger.warning("cache: Redis unreachable (%s); counting in this process until it is back", exc)
            return getattr(self._local, name)(*args, **kwargs)
        if self._down:
            self._down = False
            logger.warning("cache: Redis is back")
        return result

    def get(self, *args, **kwargs):
        return self._call("get", *args, **kwargs)

    def set(self, *args, **kwargs):
        return self._call("set", *args, **kwargs)

    def add(self, *args, **kwargs):
        return self._call("add", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._call("delete", *args, **kwargs)

    def incr(self, *args, **kwargs):
        return self._call("incr", *args, **kwargs)

    def get_many(self, *args, **kwargs):
        return self._call("get_many", *args, **kwargs)

    def set_many(self, *args, **kwargs):
        return self._call("set_many", *args, **kwargs)
