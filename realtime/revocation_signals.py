"""The immediate path of revocation (``revocation.py``): the signals of a change, sent to every server.

Connected in ``RealtimeConfig.ready()``. A user saved inactive or deleted, or
a refresh token blacklisted, revokes after its transaction commits (a rolled
back change revokes nothing): this process's sockets close on its hub's loop,
and with a cross-process layer (Redis) every hub gets ``rt.revoke``. Without
one, the other servers' periodic check closes theirs within the bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from . import revocation
from .fanout import local, revoke_message, send_from_thread

logger = logging.getLogger(__name__)


def revoke_everywhere(*, users: Iterable[object] = (), sessions: Iterable[object] = ()) -> None:
    """Close the sockets of these users and token sessions on every server (from any thread, no wait)."""
    user_ids, session_ids = [str(u) for u in users], [str(s) for s in sessions]
    message = revoke_message(user_ids, session_ids)
    hub = local()
    if hub is not None:

        async def here_and_there() -> None:
            await revocation.close_matching(hub, set(user_ids), set(session_ids))
            await hub.tell_other_servers(message)

        asyncio.run_coroutine_threadsafe(here_and_there(), hub.loop)
        return
    # Without a layer, or with it down, each server's own revocation check closes them.
    send_from_thread(message)


def _user_saved(sender, instance, raw=False, **kwargs) -> None:
    if not raw and not instance.is_active:
        pk = instance.pk
        transaction.on_commit(lambda: revoke_everywhere(users=[pk]))


def _user_deleted(sender, instance, **kwargs) -> None:
    pk = instance.pk
    transaction.on_commit(lambda: revoke_everywhere(users=[pk]))


def _token_blacklisted(sender, instance, created=False, raw=False, **kwargs) -> None:
    if created and not raw:
        jti = instance.token.jti
        transaction.on_commit(lambda: revoke_everywhere(sessions=[jti]))


def connect() -> None:
    user_model = get_user_model()
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="realtime.revoke_user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid="realtime.revoke_user_deleted")
    from django.apps import apps

    if apps.is_installed(revocation.BLACKLIST_APP):
        from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

        post_save.connect(_token_blacklisted, sender=BlacklistedToken, dispatch_uid="realtime.revoke_token")
