"""The OpenAPI document says what the service does.

FastAPI generates the document from the routes; this module corrects what it cannot know:

- parameter and body errors are answered 400 problem+json (api/problems.py), not FastAPI's 422
  with its own error schema: every 422 becomes a 400 with the Problem schema;
- every problem+json response carries the Problem schema (RFC 9457 plus our `code`, `fouten`);
- the bearer key is declared as a security scheme and required on every `/v1/` operation,
  so `/docs` can try them;
- `/readyz` documents its 503.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri-reference"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string", "description": "stable machine-readable problem code"},
        "fouten": {
            "type": "array",
            "description": "every issue found, with its location",
            "items": {"type": "object"},
        },
    },
}
BEARER = "sleutel"
_INVALID = {
    "description": "invalid parameter or body (problem+json with every issue under `fouten`)",
    "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
}


def install(app: FastAPI) -> None:
    """Replace app.openapi by the corrected document (built once, as FastAPI does)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                contact=app.contact,
            )
            app.openapi_schema = corrected(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def corrected(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "The sender's or operator's key (senders file, `key_sha256`).",
        }
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):  # FastAPI's, not ours
                del responses["422"]
                responses.setdefault("400", _INVALID)
            for response in responses.values():
                content = response.get("content", {})
                if PROBLEM_MEDIA_TYPE in content:
                    content[PROBLEM_MEDIA_TYPE] = {"schema": PROBLEM_REF}
            if path.startswith("/v1/"):
                operation["security"] = [{BEARER: []}]
    readyz = document.get("paths", {}).get("/readyz", {}).get("get")
    if readyz is not None:
        readyz["responses"].setdefault(
            "503",
            {
                "description": "the database takes no writes or Kafka is unreachable (Retry-After)",
            },
        )
    return document
