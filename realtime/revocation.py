"""Revocation: which sockets lost the right to stay open, and closing them (4403).

A socket is revoked when its user is deactivated or deleted, or when the
token session it authenticated with is blacklisted (docs/protocol.md section 5:
closed with 4403 within 10 seconds on every server).

A *token session* is one sign-in: ``POST /api/auth/token/`` writes the jti of
the refresh token it issues into that token as ``sid`` (``tokens.py``), and
every access token refreshed from it carries the same ``sid``. Blacklisting
that refresh token (``POST /api/auth/logout/``, or the admin's blacklisted
tokens) revokes the session: its access tokens open no socket and no API
request, and its live sockets close. Refresh tokens are not rotated (a
rotation would blacklist the session's own refresh token).

Two paths reach every server process:

- at once: the change's signal (``revocation_signals.py``) closes this
  process's sockets and, with a cross-process channel layer (Redis), sends
  ``rt.revoke`` to every other server's hub;
- as a check: each hub asks the database every ``REALTIME_REVOCATION_INTERVAL``
  seconds (default 5) about the users and sessions of its sockets, so what
  sends no signal (``QuerySet.update(is_active=False)``, SQL, another process
  without Redis) is found within the bound too: one or two queries per
  interval per process, whatever the number of sockets.
"""

from __future__ import annotations

import asyncio
import logging

from django.apps import apps
from django.contrib.auth import get_user_model

from . import conf
from .protocol import CLOSE_DISCONNECTED

logger = logging.getLogger(__name__)

SESSION_CLAIM = "sid"
BLACKLIST_APP = "rest_framework_simplejwt.token_blacklist"


def _blacklist_installed() -> bool:
    return apps.is_installed(BLACKLIST_APP)


def session_revoked(session: str | None) -> bool:
    """Is this token session blacklisted? (Runs a query; False for tokens without a session.)"""
    if not session or not _blacklist_installed():
        return False
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

    return BlacklistedToken.objects.filter(token__jti=session).exists()


def revoked(user_ids: set[str], sessions: set[str]) -> tuple[set[str], set[str]]:
    """Of these users and sessions (a hub's sockets'), those that lost their right: inactive or
    deleted users, blacklisted sessions."""
    active = {
        str(pk)
        for pk in get_user_model().objects.filter(pk__in=list(user_ids), is_active=True).values_list("pk", flat=True)
    }
    gone_sessions: set[str] = set()
    if sessions and _blacklist_installed():
        from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

        gone_sessions = set(
            BlacklistedToken.objects.filter(token__jti__in=list(sessions)).values_list("token__jti", flat=True)
        )
    return user_ids - active, gone_sessions


def matches(conn, users: set[str], sessions: set[str]) -> bool:
    # ``token_session`` is optional on a hub connection (an SSE stream may have none).
    session = getattr(conn, "token_session", None)
    return conn.user_id in users or (session is not None and session in sessions)


async def close_matching(hub, users: set[str], sessions: set[str]) -> int:
    """Close this process's sockets of ``users`` or ``sessions`` with 4403; returns how many."""
    victims = [conn for conn in list(hub.connections.values()) if matches(conn, users, sessions)]
    for conn in victims:
        try:
            await conn.close_with(CLOSE_DISCONNECTED)
        except Exception:
            logger.warning("closing revoked connection %s failed", conn.connection_id, exc_info=True)
    if victims:
        logger.info("closed %d revoked connections (4403)", len(victims))
    return len(victims)


async def watch(hub) -> None:
    """The hub's periodic check: every REALTIME_REVOCATION_INTERVAL seconds, one look at the database."""
    while not hub.stopping:
        await asyncio.sleep(float(conf.get("REALTIME_REVOCATION_INTERVAL")))
        connections = list(hub.connections.values())
        users = {conn.user_id for conn in connections if conn.user_id is not None}
        if not users:
            continue
        sessions = {s for conn in connections if (s := getattr(conn, "token_session", None)) is not None}
        try:
            gone_users, gone_sessions = await hub.db(revoked, users, sessions)
        except Exception:
            logger.warning("revocation check failed; retrying", exc_info=True)
            continue
        if gone_users or gone_sessions:
            await close_matching(hub, gone_users, gone_sessions)
