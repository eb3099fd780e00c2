"""Token sessions (``revocation.py``): the ``sid`` claim, and the API's check of it.

``SessionTokenObtainPairSerializer`` (SIMPLE_JWT's ``TOKEN_OBTAIN_SERIALIZER``)
names each sign-in after its refresh token's jti; SimpleJWT copies the claim
into every access token made from that refresh token. ``RevocableJWTAuthentication``
refuses an access token whose session is blacklisted, as the socket does
(``auth.py``): logging out ends the session's API access at once, not when its
access token expires.
"""

from __future__ import annotations

from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.settings import api_settings

from .revocation import SESSION_CLAIM, session_revoked


class SessionTokenObtainPairSerializer(TokenObtainPairSerializer):
    @classmethod
    def get_token(cls, user):
        token = super().get_token(user)
        token[SESSION_CLAIM] = token[api_settings.JTI_CLAIM]
        return token


class RevocableJWTAuthentication(JWTAuthentication):
    def get_user(self, validated_token):
        user = super().get_user(validated_token)  # refuses deleted and inactive users
        if session_revoked(validated_token.get(SESSION_CLAIM)):
            raise AuthenticationFailed("token has been revoked", code="token_revoked")
        return user
