"""The OpenAPI schema documents the error answers every endpoint can give (400/401/403/404/413/415/429).

drf-spectacular documents only the success of each operation, but every
endpoint answers a bad token with 401, a refused permission or CSRF check with
403, and so on; a client generated from the schema (and schemathesis, which
checks the answers against it) must know them. A postprocessing hook adds them
to every operation, with DRF's error shapes: ``{"detail": "..."}``, and for
400 the field errors (``{"field": ["message"]}``) as well.
"""

from __future__ import annotations

DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# DRF's 400: a detail (a parse error), messages per field, or for a list body
# (POST /api/events/ takes a batch) one such object per item.
FIELD_ERRORS = {"anyOf": [{"type": "object", "additionalProperties": True}, {"type": "array"}]}

ALWAYS = {
    "401": "Not authenticated, or the token is invalid or expired.",
    "403": "Not allowed (permission, CSRF with a session).",
    "404": "No such object, or a malformed id.",
    "429": "Throttled: try again after the Retry-After header's seconds.",
}
WITH_INPUT = {"400": "Bad input: the field errors, or a parse error's detail."}
WITH_BODY = {
    "413": "The request body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.",
    "415": "The request body is not JSON.",
}


def _error(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def add_error_responses(result, generator, request, public):
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            wanted = dict(ALWAYS)
            if operation.get("parameters") or "requestBody" in operation:
                wanted.update(WITH_INPUT)
            if "requestBody" in operation:
                wanted.update(WITH_BODY)
            for code, description in wanted.items():
                schema = FIELD_ERRORS if code == "400" else DETAIL
                responses.setdefault(code, _error(description, schema))
    return result
