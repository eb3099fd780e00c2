"""The API's one request parser: JSON, with a size and a depth bound (docs/protocol.md section 5).

DRF's own ``JSONParser`` reads the raw stream, so Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` (checked only by ``HttpRequest.body``) never
applies to it: a 20 MB body was read and parsed. Here the same setting bounds
it, by ``Content-Length`` before anything is read and by a bounded read after
(413). A body nested past ``API_MAX_JSON_DEPTH`` is a 400, checked before the
data reaches a serializer, an encoder or the store (1000 levels gave a
``RecursionError``, a 500). Only JSON is parsed: the API's clients (the
dashboard, the JS client, scripts) send nothing else, and every extra parser
is one more body to bound.
"""

from __future__ import annotations

import codecs
import json

from django.conf import settings
from rest_framework import parsers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.utils.json import strict_constant

DEFAULT_MAX_JSON_DEPTH = 64


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "request body too large"
    default_code = "body_too_large"


def max_body_size() -> int | None:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def max_depth() -> int:
    return int(getattr(settings, "API_MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH))


def problem_in(data, depth_limit: int) -> str | None:
    """What no valid request holds: nesting past ``depth_limit``, or a lone UTF-16
    surrogate (``"\\ud800"``), which Python's decoder accepts and every encoder
    after it (the database's, the socket's) refuses. Iterative: nothing to run out of."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode()
                except UnicodeEncodeError:
                    return "a string holds a lone surrogate"
            continue
        if isinstance(value, dict):
            children = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > depth_limit:
            return f"nested deeper than {depth_limit} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = max_body_size()
        request = parser_context.get("request")
        if limit is not None and request is not None:
            meta = request.META
            try:
                declared = int(meta.get("CONTENT_LENGTH") or meta.get("HTTP_CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                raise BodyTooLarge(f"request body too large: at most {limit} bytes")
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise BodyTooLarge(f"request body too large: at most {limit} bytes")
        try:
            text = codecs.decode(raw, encoding)
            data = json.loads(text, parse_constant=strict_constant if self.strict else None)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
            raise ParseError(f"JSON parse error - {exc}") from None
        if problem := problem_in(data, max_depth()):
            raise ParseError(f"JSON parse error - {problem}")
        return data
