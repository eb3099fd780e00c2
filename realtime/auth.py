"""Socket authentication: a SimpleJWT access token to a user, or a clear refusal.

Only access tokens open a socket (``AccessToken``: a refresh token is refused).
Tokens are never logged: nothing here or in the consumer logs a token or a query string.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from .protocol import E_TOKEN_EXPIRED, E_TOKEN_INVALID
from .revocation import SESSION_CLAIM, revoked, session_revoked


class AuthFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Authenticated:
    user: Any
    expires_at: float  # a Unix timestamp
    session: str | None = None  # the token's sign-in (revocation.py); None for tokens made without one


def authenticate(raw_token: str) -> Authenticated:
    """Validate an access token and load its active user (runs ORM queries)."""
    token = _access_token(raw_token)
    user = (
        get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: token.get(api_settings.USER_ID_CLAIM)}).first()
    )
    session = token.get(SESSION_CLAIM)
    return _authenticated(token, user, session_revoked(session))


def authenticate_many(raw_tokens: list[str]) -> list[Authenticated | AuthFailed]:
    """``authenticate`` for each token, in one query for the users and one for the
    sessions; each answer is what ``authenticate`` returns or raises. Each user
    is its own instance, as separate calls would give."""
    tokens: list[AccessToken | AuthFailed] = []
    for raw in raw_tokens:
        try:
            tokens.append(_access_token(raw))
        except AuthFailed as exc:
            tokens.append(exc)
    valid = [token for token in tokens if not isinstance(token, AuthFailed)]
    field = api_settings.USER_ID_FIELD
    ids = {token.get(api_settings.USER_ID_CLAIM) for token in valid}
    users = {str(getattr(user, field)): user for user in get_user_model().objects.filter(**{f"{field}__in": ids})}
    sessions = {session for token in valid if (session := token.get(SESSION_CLAIM))}
    _, gone = revoked(set(), sessions) if sessions else (set(), set())
    out: list[Authenticated | AuthFailed] = []
    for token in tokens:
        if isinstance(token, AuthFailed):
            out.append(token)
            continue
        user = users.get(str(token.get(api_settings.USER_ID_CLAIM)))
        session = token.get(SESSION_CLAIM)
        try:
            out.append(_authenticated(token, copy.copy(user), session in gone))
        except AuthFailed as exc:
            out.append(exc)
    return out


def _access_token(raw_token: str) -> AccessToken:
    try:
        # simplejwt 5.5 annotates the encoded token as its own Token class; it takes the string.
        return AccessToken(raw_token)  # type: ignore[arg-type]
    except ExpiredTokenError:
        raise AuthFailed(E_TOKEN_EXPIRED, "token has expired") from None
    except TokenError:
        raise AuthFailed(E_TOKEN_INVALID, "token is invalid") from None


def _authenticated(token: AccessToken, user: Any, session_is_revoked: bool) -> Authenticated:
    if user is None or not user.is_active:
        raise AuthFailed(E_TOKEN_INVALID, "token is invalid: no such active user")
    if session_is_revoked:
        raise AuthFailed(E_TOKEN_INVALID, "token is invalid: it has been revoked")
    return Authenticated(user=user, expires_at=float(token["exp"]), session=token.get(SESSION_CLAIM))


def seconds_left(expires_at: float) -> float:
    return expires_at - datetime.now(UTC).timestamp()


def session_user(cookie_header: str) -> Any | None:
    """The signed-in user of a Django session cookie, or None (runs ORM queries).

    For the SSE stream of a same-site page (docs/protocol.md section 13): the session
    is checked exactly as Django's own middleware checks it (its auth hash included).
    """
    from http.cookies import CookieError, SimpleCookie
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import get_user
    from django.http import HttpRequest

    try:
        cookies = SimpleCookie(cookie_header)
    except CookieError:
        return None
    morsel = cookies.get(settings.SESSION_COOKIE_NAME)
    if morsel is None or not morsel.value:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(morsel.value)
    request = HttpRequest()  # what get_user reads of it: the session
    request.session = store
    user = get_user(request)
    return user if user.is_authenticated and user.is_active else None
