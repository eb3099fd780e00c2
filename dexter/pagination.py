"""List pagination: ``?limit=&offset=`` with a ceiling (``API_MAX_PAGE_SIZE``, default 500).

DRF's ``LimitOffsetPagination`` has no ``max_limit`` by default, and
``?limit=9223372036854775808`` reached the database as ``OFFSET + LIMIT``
past 64 bits: a 500. Larger limits are served as the ceiling.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.pagination import LimitOffsetPagination

DEFAULT_MAX_PAGE_SIZE = 500


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    @property
    def max_limit(self) -> int:
        return int(getattr(settings, "API_MAX_PAGE_SIZE", DEFAULT_MAX_PAGE_SIZE))
