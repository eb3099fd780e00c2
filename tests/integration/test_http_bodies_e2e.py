"""Request bodies through the real server: daphne hands them to Django as sent.

Twisted does not parse POST form bodies for daphne (realtime/server.py): Django
parses its own forms, so a sign-in through the admin's form, URL-encoded or
multipart, must still reach Django whole.
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from .conftest import USER_PASSWORD


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def signed_in_with(server, encode) -> tuple[int, str]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())
    with opener.open(server.http + "/admin/login/", timeout=10) as resp:
        page = resp.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    fields = {"csrfmiddlewaretoken": token, "username": "admin", "password": USER_PASSWORD, "next": "/admin/"}
    body, content_type = encode(fields)
    req = urllib.request.Request(server.http + "/admin/login/", data=body, method="POST")
    req.add_header("Content-Type", content_type)
    req.add_header("Referer", server.http + "/admin/login/")
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Location", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", "")


def urlencoded(fields):
    return urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded"


def multipart(fields):
    boundary = "dexter-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("encode", [urlencoded, multipart], ids=["urlencoded", "multipart"])
def test_a_form_post_reaches_django_whole(server, encode):
    status, location = signed_in_with(server, encode)
    assert (status, location) == (302, "/admin/")


def test_json_posts_still_publish(server):
    token = server.token("admin")
    status, body = server.request(
        "POST", "/api/realtime/broadcast/", {"channel": "global", "message": {"type": "announcement"}}, token
    )
    assert status == 202 and body["channel"] == "global", body
