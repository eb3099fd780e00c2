"""The token endpoints: SimpleJWT's views with the brute-force throttles, and logout."""

from __future__ import annotations

from rest_framework_simplejwt.views import TokenObtainPairView

from .throttles import TokenAddressThrottle, TokenUsernameThrottle


class ThrottledTokenObtainPairView(TokenObtainPairView):
    # Address first: a flood of bodies without a username still counts.
    throttle_classes = [TokenAddressThrottle, TokenUsernameThrottle]
