"""Timestamps as the wire writes them: ISO 8601 in UTC with a Z suffix, to the millisecond."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    """The current UTC time as ISO 8601 with a Z suffix, to the millisecond."""
    return iso_utc(datetime.now(UTC))


def iso_utc(value: datetime) -> str:
    """``value`` as ISO 8601 in UTC with a Z suffix, to the millisecond."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso(value: datetime | None) -> str | None:
    """``iso_utc`` for a timestamp that may be missing (``last_seen`` of someone never seen)."""
    return None if value is None else iso_utc(value)
