"""The OpenAPI document: FastAPI's, with gridmap's error answers described.

Every error the app sends has one shape, `{"error": ..., "detail": ..., "problems": [...]}`
(see api/errors.py), whatever raised it. FastAPI's generated document knows
only its own 422 body, so clients (and schema-driven fuzzers) would be told a different
shape and too few status codes. Here every operation gets the statuses any request can
meet, each with the one error schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

from api.errors import OPEN311_PREFIX

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "the kind of problem, e.g. InvalidInput, NotFound, Conflict"},
        "detail": {"type": "string", "description": "what is wrong and what to do, in words"},
        "problems": {"type": "array", "items": {"type": "object"},
                     "description": "for a request that does not fit the schema: each field at fault"},
    },
}

# statuses any operation can answer with, whatever its own documentation says
ERRORS = {
    "400": "Bad request: a parameter the service cannot read",
    "401": "No credentials, or unknown ones (when authentication is on)",
    "403": "The credentials' role may not do this",
    "404": "No such unit, plan, incident or route",
    "409": "Conflict: the data changed since it was read; reload and try again",
    "413": "The request body is too large",
    "422": "Invalid input: the detail names the field and the problem",
    "503": "The database is not reachable; retry after the Retry-After header's seconds",
}


# Open311 GeoReport v2 has its own error body, a list of {code, description}
OPEN311_ERROR_SCHEMA = {
    "title": "Open311Error",
    "type": "array",
    "items": {"type": "object", "required": ["code", "description"],
              "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}},
}


def _error_response(description: str, schema: str = "Error") -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace FastAPI's validation-error answers by gridmap's error shape on every operation."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    components["Open311Error"] = OPEN311_ERROR_SCHEMA
    for path, ops in schema.get("paths", {}).items():
        shape = "Open311Error" if path.startswith(OPEN311_PREFIX) else "Error"
        for op in ops.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            for code, description in ERRORS.items():
                own = responses.get(code, {})
                answer = _error_response(own.get("description") or description, shape)
                # keep other media types an operation declares itself (an HTML error page)
                answer["content"] = {**own.get("content", {}), **answer["content"]}
                responses[code] = answer
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install(app: FastAPI, documented: Sequence[BaseRoute] = ()) -> None:
    """Serve the described document at /openapi.json (built once, on first request), with the
    `documented` routes: descriptions of what plain Starlette routes serve (GET /locate)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=[*app.routes, *documented],
            ))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
