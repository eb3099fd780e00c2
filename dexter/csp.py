"""django-csp's middleware with the policy built once, not twice per response.

``CSPMiddleware`` builds the Content-Security-Policy and its report-only twin
from the settings for every response (``dataclasses.asdict`` and the
directive join included): about a tenth of the server CPU of a broadcast POST
(bench/README.md, "Lean publish path"). A response that asks for nothing of
its own (no ``@csp_update``/``@csp_replace``/``@csp`` decoration and no nonce
used) gets the same header every time, so it is built once per value of the
two settings and reused; anything else goes through django-csp as before.
The header-setting rules (exempt views, excluded prefixes, a header already
set, the 404/500 debug pages) are django-csp's.
"""

from __future__ import annotations

import http.client as http_client

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings

OWN_POLICY = ("_csp_config", "_csp_update", "_csp_replace", "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro")

_built: dict[str, tuple[str, str]] = {}


def _policies() -> tuple[str, str, dict, dict]:
    policy = getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}
    report_only = getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None) or {}
    key = repr((policy, report_only))
    built = _built.get(key)
    if built is None:
        if len(_built) > 16:  # settings changed many times (tests): start over
            _built.clear()
        built = _built[key] = (build_policy(), build_policy(report_only=True))
    return built[0], built[1], policy, report_only


class CachedCSPMiddleware(CSPMiddleware):
    def process_response(self, request, response):
        if isinstance(getattr(request, "_csp_nonce", None), str) or any(hasattr(response, a) for a in OWN_POLICY):
            return super().process_response(request, response)
        if response.status_code in (http_client.INTERNAL_SERVER_ERROR, http_client.NOT_FOUND) and settings.DEBUG:
            return response
        csp, csp_ro, policy, report_only = _policies()
        path = request.path_info
        if csp and not getattr(response, "_csp_exempt", False) and HEADER not in response:
            if not path.startswith(tuple(policy.get("EXCLUDE_URL_PREFIXES", None) or ())):
                response[HEADER] = csp
        if csp_ro and not getattr(response, "_csp_exempt_ro", False) and HEADER_REPORT_ONLY not in response:
            if not path.startswith(tuple(report_only.get("EXCLUDE_URL_PREFIXES", None) or ())):
                response[HEADER_REPORT_ONLY] = csp_ro
        # As django-csp: a nonce asked for after the header is written is an error, not a silent gap.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response
