"""What the NL API Design Rules (Logius, ADR 2.x, the REST standard the Digikoppeling REST-API
profile builds on) ask of every response and of the published contract.

- /core/version-header: every response carries `API-Version` with the full semantic version;
- /core/publish-openapi: the OpenAPI document is published at the root of each major version
  (`/v1/openapi.json`), readable from any origin (CORS `*`): it holds no secret;
- /core/uri-version and /core/no-trailing-slash are properties of the routes themselves and
  are checked by tests/api/test_design_rules.py, one test per rule.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The API's semantic version (/core/semver): the major is the `/v1` in the paths; minor and
# patch change with additions and fixes that do not break a client.
API_VERSION = "1.0.0"
MAJOR = API_VERSION.split(".", 1)[0]


class ApiVersionHeader:
    """Pure ASGI middleware: `API-Version` on every HTTP response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"api-version", API_VERSION.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_version)


def openapi_router(app: FastAPI) -> APIRouter:
    """`GET /v{major}/openapi.json`: the same document as `/openapi.json`."""
    router = APIRouter(include_in_schema=False)

    @router.get(f"/v{MAJOR}/openapi.json")
    async def openapi_of_this_version(request: Request) -> JSONResponse:
        document: dict[str, Any] = app.openapi()
        return JSONResponse(document, headers={"Access-Control-Allow-Origin": "*"})

    return router
