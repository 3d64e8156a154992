"""JSON request bodies read by the route itself, after it has authenticated the caller.

A FastAPI body parameter is read and parsed before any dependency runs, so an unknown caller
could make the service read and parse a body (and learn from a 400 that the endpoint exists
and what it wants). The operators' endpoints therefore call `deps.sender_of` first and then
`json_body`; the body is capped by api/body_limit.py. `json_request_body` documents the body
in the OpenAPI description as a body parameter would.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

# No text field of a request may hold a control character (see api/request_target.py):
# `pattern=NO_CONTROL` on a pydantic field, CONTROL_CHARACTERS to search.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


async def json_body(request: Request, model: type[M]) -> M:
    """The body as `model`; RequestValidationError (400 problem) when it is not that."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        # Place and rule only: never the input, which may hold a BSN.
        errors = [
            {"loc": ("body", *err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None


async def optional_json_body(request: Request, model: type[M]) -> M | None:
    """As json_body, but an empty body is None."""
    if not await request.body():
        return None
    return await json_body(request, model)


def json_request_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` describing `model` as the JSON request body."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
