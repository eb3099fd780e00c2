"""Canonical integer ids (docs/protocol.md section 2): decimal ASCII digits, no leading zeros, 64-bit.

``str.isdigit()`` and ``int()`` accept far more (``"²"``, ``"٣"``, ``" 1"``,
``"01"``, 5000 digits), and each of those reached the database as a 500 or
named a second, silent channel (``user:01``). Everything that takes an id from
a client (a query parameter, a URL, a body) parses it here.
"""

from __future__ import annotations

import re

MAX_ID = 2**63 - 1  # a BigAutoField; larger numbers overflow SQLite and PostgreSQL alike
_CANONICAL = re.compile(r"[1-9][0-9]{0,18}")


def parse_id(value) -> int | None:
    """The id ``value`` names, or None when it is not a canonical positive integer id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= MAX_ID else None
    if not isinstance(value, str) or not _CANONICAL.fullmatch(value):
        return None
    number = int(value)
    return number if number <= MAX_ID else None


class IdConverter:
    """A URL converter (``<id:issue_id>``) for canonical ids: anything else is a 404, not a 500."""

    regex = "[1-9][0-9]{0,18}"

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValueError(value)  # Django treats it as no match
        return number

    def to_url(self, value) -> str:
        return str(value)


def register_id_converter() -> None:
    """Make ``<id:...>`` available to URL patterns (idempotent: several URL modules call it)."""
    from django.urls import converters, register_converter

    if "id" not in converters.REGISTERED_CONVERTERS:
        register_converter(IdConverter, "id")
