"""Where the client connects and signs in: the socket URL, the token endpoint, and URLs
fit to print (never a token in a log line).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

SIGN_IN_ERRORS = {
    400: "username and password are required",
    401: "wrong username or password",
    429: "too many sign-in attempts, try again later",
}


def redact(text: str, token: str | None) -> str:
    """``text`` without ``token`` in it (a library's error may quote the URL it was given)."""
    return text.replace(token, "<token>") if token else text


def display_url(url: str) -> str:
    """Scheme, host and path of ``url``: never its query (which may carry a token)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", "")).replace(
        f"//{parts.hostname}", f"//{parts.netloc.rpartition('@')[2]}"
    )


def http_base(ws_url: str) -> str:
    parts = urllib.parse.urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


DEFAULT_TOKEN_PATH = "/api/auth/token/"


def token_endpoint(ws_url: str, token_url: str | None) -> str:
    """Where to sign in: ``token_url`` as given when absolute, else a path on the server."""
    target = token_url or DEFAULT_TOKEN_PATH
    if urllib.parse.urlsplit(target).scheme in ("http", "https"):
        return target
    return http_base(ws_url) + "/" + target.lstrip("/")


def fetch_token(ws_url: str, username: str, password: str, timeout: float = 10, token_url: str | None = None) -> str:
    """A SimpleJWT access token from ``POST <token_url>`` (default ``/api/auth/token/``)."""
    body = json.dumps({"username": username, "password": password}).encode()
    request = urllib.request.Request(
        token_endpoint(ws_url, token_url), data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["access"]


def socket_url(base: str, client_id: str, token: str | None, batch: bool) -> str:
    params = {}
    if token:
        params["token"] = token
    if batch:
        params["batch"] = "1"
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    return f"{base.rstrip('/')}/ws/{urllib.parse.quote(client_id)}/{query}"
