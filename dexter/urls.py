from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework_simplejwt.views import TokenBlacklistView, TokenRefreshView

from dexter.auth_views import ThrottledTokenObtainPairView
from dexter.views import dashboard, issue_page, ops_console

handler404 = "dexter.errors.not_found"
handler500 = "dexter.errors.server_error"

urlpatterns = [
    path("", dashboard, name="dashboard"),
    path("ops/", ops_console, name="ops"),
    path("issues/<int:issue_id>/", issue_page, name="issue-page"),
    path("admin/", admin.site.urls),
    path("api/auth/token/", ThrottledTokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    # Logout: blacklists the refresh token, which revokes its session (realtime/revocation.py).
    path("api/auth/logout/", TokenBlacklistView.as_view(), name="logout"),
    path("api/realtime/", include("realtime.urls")),
    path("api/", include("issues.urls")),
    path("api/", include("alerts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
