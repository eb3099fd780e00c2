"""Who is acting right now: the user behind a save, when there is one.

API views and admin actions run their writes inside ``acting_as(request.user)``;
the signal receivers read ``current_actor()`` to fill ``resolved_by`` and the
assignment notification's ``by``. Shells, commands and workers act as nobody
(None). A ContextVar, not a thread-local, so it also holds under asyncio.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_actor: ContextVar[Any] = ContextVar("issues_acting_user", default=None)


@contextmanager
def acting_as(user: Any) -> Iterator[None]:
    """Attribute the saves made inside the block to ``user`` (anonymous counts as nobody)."""
    token = _actor.set(user if user is not None and getattr(user, "is_authenticated", False) else None)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor() -> Any:
    return _actor.get()


def current_actor_id() -> str | None:
    user = _actor.get()
    return None if user is None else str(user.pk)
