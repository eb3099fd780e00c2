"""HTTP/1.1 heads for ``plain_http``: the plain request's, read, and the answer's, written.

``PlainRequest.parse`` accepts only what the front serves itself (the rules are
in plain_http.py's docstring) and says None to anything else, which then goes
to daphne whole. ``response_head`` frames an answer as Twisted's ``Request``
does for daphne.
"""

from __future__ import annotations

from urllib.parse import unquote

from daphne.utils import HEADER_NAME_RE, INVALID_HEADER_VALUE_BYTES
from django.conf import settings
from twisted.web.http import NO_BODY_CODES, RESPONSES

MAX_HEAD = 16384  # Twisted's HTTPChannel.totalHeadersSize
DEFAULT_BODY_LIMIT = 2621440  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE default, when the project sets None
CRLF = b"\r\n"
END_OF_HEAD = b"\r\n\r\n"
# Request headers that make a request not plain.
HANDED_OVER = frozenset((b"transfer-encoding", b"upgrade", b"expect"))


def body_limit() -> int:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return DEFAULT_BODY_LIMIT if limit is None else limit


class PlainRequest:
    """What the head of a plain request says, or nothing (``parse`` returns None)."""

    __slots__ = ("method", "uri", "path", "query", "headers", "length", "close", "root_path")
    method: bytes
    uri: bytes
    path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    length: int
    close: bool
    root_path: str

    @classmethod
    def parse(cls, head: bytes, root_path: str, limit: int) -> PlainRequest | None:
        lines = head.split(CRLF)
        parts = lines[0].split(b" ")
        if len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1" or not parts[1].startswith(b"/"):
            return None
        request = cls()
        request.method, request.uri = parts[0], parts[1]
        path, _, query = request.uri.partition(b"?")
        if not path.isascii() or not query.isascii():
            return None  # daphne answers 400
        request.path, request.query = path, query
        request.root_path = root_path
        headers = []
        length = None
        close = False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not HEADER_NAME_RE.fullmatch(name) or b"\n" in value or b"\r" in value:
                return None
            value = value.strip(b" \t")
            if INVALID_HEADER_VALUE_BYTES.intersection(value):
                return None
            name = name.lower()
            if name in HANDED_OVER:
                return None
            if name == b"content-length":
                if length is not None or not value.isdigit() or len(value) > 18:
                    return None
                length = int(value)
            elif name == b"connection":
                close = b"close" in value.lower()
            elif name == b"daphne-root-path":
                request.root_path = unquote(value.decode("ascii"))
                continue
            if b"_" not in name:  # daphne drops these (CVE-2015-0219)
                headers.append((name, value))
        if length is None or length > limit:
            return None
        request.headers, request.length, request.close = headers, length, close
        return request


def response_head(
    status: int, headers: list, server_name: str | None, length: int | None, close: bool
) -> tuple[bytes, bool, bool]:
    """The answer's status line and headers, and whether its body is chunked and whether it has none.

    ``length`` is the body's when it is known at once (a ``Content-Length`` is
    added unless the application gave one), None when it comes in parts
    (chunked); 204, 304 and 1xx answers carry no body.
    """
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, RESPONSES.get(status, b"Unknown Status"))]
    has_length = has_server = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            has_length = True
        elif lowered == b"server":
            has_server = True
        lines.append(b"%s: %s\r\n" % (name, value))
    block = b"".join(lines)
    if block.count(b"\r") != len(lines) or block.count(b"\n") != len(lines):
        # A line break inside a header would start another: made a space, as Twisted does.
        lines[1:] = [b"%s: %s\r\n" % (_one_line(n), _one_line(v)) for n, v in headers]
    if server_name and not has_server:
        lines.append(b"Server: %s\r\n" % server_name.encode())
    no_body = status in NO_BODY_CODES
    chunked = False
    if not has_length and not no_body:
        if length is None:
            chunked = True
            lines.append(b"Transfer-Encoding: chunked\r\n")
        else:
            lines.append(b"Content-Length: %d\r\n" % length)
    if close:
        lines.append(b"Connection: close\r\n")
    lines.append(CRLF)
    return b"".join(lines), chunked, no_body


def _one_line(value: bytes) -> bytes:
    if b"\r" in value or b"\n" in value:
        return value.replace(b"\r\n", b" ").replace(b"\r", b" ").replace(b"\n", b" ")
    return value
